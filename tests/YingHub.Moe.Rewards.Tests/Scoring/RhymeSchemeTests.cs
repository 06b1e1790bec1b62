using YingHub.Moe.Testing;

namespace YingHub.Moe.Rewards.Tests.Scoring;

public sealed class RhymeSchemeTests
{
    private static TextAnalysis Analyze(string text) => CmuLexicon.Reward().Analyze(text);

    [SharedDataFact(CmuLexicon.File)]
    public void DetectsAbabQuatrains()
    {
        foreach (string quatrain in new[] { Texts.Sonnet18SecondQuatrain, Texts.GrayElegy })
        {
            TextAnalysis analysis = Analyze(quatrain);
            Assert.Equal("ABAB", analysis.RhymeScheme);
            Assert.Equal(1.0, analysis.Reward.Components[RewardComponentNames.Rhyme], 9);
        }
    }

    [SharedDataFact(CmuLexicon.File)]
    public void DetectsACouplet()
    {
        TextAnalysis analysis = Analyze(Texts.Couplet);
        Assert.Equal("AA", analysis.RhymeScheme);
        Assert.Equal(1.0, analysis.Reward.Components[RewardComponentNames.Rhyme], 9);
    }

    [SharedDataFact(CmuLexicon.File)]
    public void DetectsAabb()
    {
        TextAnalysis analysis = Analyze(Texts.AabbQuatrain);
        Assert.Equal("AABB", analysis.RhymeScheme);
        Assert.Equal(1.0, analysis.Reward.Components[RewardComponentNames.Rhyme], 9);
    }

    [SharedDataFact(CmuLexicon.File)]
    public void SchemesTheWholeSonnetByPerfectRhyme()
    {
        // temperate/date is a rhyme of Shakespeare's time but not a perfect one in the lexicon (AH0 T vs EY1 T), so the
        // first quatrain is half ABAB: (1 + 0) / 2; the other two quatrains and the couplet score 1.
        TextAnalysis analysis = Analyze(Texts.Sonnet18);
        Assert.Equal("ABAC DEDE FGFG HH", analysis.RhymeScheme);
        Assert.Equal((0.5 + 1 + 1 + 1) / 4, analysis.Reward.Components[RewardComponentNames.Rhyme], 9);
        Assert.Equal(14, analysis.Lines.Count);
        Assert.Equal("ABACDEDEFGFGHH", new string(analysis.Lines.Select(l => l.RhymeLabel).ToArray()));
    }

    [SharedDataFact(CmuLexicon.File)]
    public void RepeatedEndWordsDoNotRhyme()
    {
        TextAnalysis analysis = Analyze("I walked along the road all day\nAnd then I rested all the day");
        Assert.Equal("AB", analysis.RhymeScheme);
        Assert.Equal(0.0, analysis.Reward.Components[RewardComponentNames.Rhyme], 9);
    }

    [SharedDataFact(CmuLexicon.File)]
    public void BlankLinesSeparateStanzas()
    {
        // Two couplets in separate stanzas, then a lone line that is not scored.
        TextAnalysis analysis = Analyze("The light of day\nNow fades away\n\nThe night is long\nI sing my song\n\nAlone");
        Assert.Equal("AA BB C", analysis.RhymeScheme);
        Assert.Equal(1.0, analysis.Reward.Components[RewardComponentNames.Rhyme], 9);
    }
}
