using YingHub.Moe.Rewards.Pronunciation;
using YingHub.Moe.Testing;

namespace YingHub.Moe.Rewards.Tests.Pronunciation;

public sealed class RhymeTests
{
    private static bool Rhymes(string a, string b)
    {
        var pronouncer = new Pronouncer(CmuLexicon.Instance);
        return pronouncer.Rhymes(a, pronouncer.Resolve(a), b, pronouncer.Resolve(b));
    }

    [SharedDataFact(CmuLexicon.File)]
    public void DayAndMayRhyme() => Assert.True(Rhymes("day", "may"));

    [SharedDataFact(CmuLexicon.File)]
    public void LoveAndProveDoNotRhymePerfectly() => Assert.False(Rhymes("love", "prove"));

    [SharedDataFact(CmuLexicon.File)]
    public void IdenticalWordsDoNotRhyme()
    {
        Assert.False(Rhymes("day", "day"));
        Assert.False(Rhymes("'tis", "tis"));
    }

    [SharedDataFact(CmuLexicon.File)]
    public void RhymesFromTheLastStressedVowel()
    {
        Assert.True(Rhymes("shines", "declines"));   // AY1 N Z
        Assert.True(Rhymes("sometime", "time"));     // secondary stress AY2 M
        Assert.True(Rhymes("see", "thee"));
        Assert.False(Rhymes("summer", "day"));
        Assert.False(Rhymes("temperate", "date"));   // Shakespeare's rhyme, not a perfect one today: AH0 T vs EY1 T
    }

    [SharedDataFact(CmuLexicon.File)]
    public void ElidedAndUnknownWordsRhymeByTheirSoundsOrSpelling()
    {
        Assert.True(Rhymes("dimm'd", "trimmed"));     // dimm'd is looked up as dimmed
        Assert.True(Rhymes("ow'st", "grow'st"));      // neither is in the lexicon: spelling rhyme
        Assert.False(Rhymes("ow'st", "thou"));
    }
}
