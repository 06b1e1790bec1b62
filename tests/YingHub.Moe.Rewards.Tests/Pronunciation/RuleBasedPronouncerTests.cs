using YingHub.Moe.Rewards.Pronunciation;

namespace YingHub.Moe.Rewards.Tests.Pronunciation;

public sealed class RuleBasedPronouncerTests
{
    [Theory]
    [InlineData("day", 1)]
    [InlineData("table", 2)]        // -le after a consonant is a syllable
    [InlineData("make", 1)]         // silent final e
    [InlineData("jumped", 1)]       // silent -ed
    [InlineData("wanted", 2)]       // -ed after t
    [InlineData("makes", 1)]        // silent -es
    [InlineData("boxes", 2)]        // -es after a sibilant
    [InlineData("lion", 2)]         // hiatus
    [InlineData("idea", 3)]
    [InlineData("yes", 1)]          // y as a consonant
    [InlineData("happy", 2)]        // y as a vowel
    [InlineData("beyond", 2)]
    [InlineData("lovely", 2)]       // silent e before -ly
    [InlineData("chasm", 2)]
    [InlineData("lovest", 2)]       // Early Modern -est
    [InlineData("loveth", 2)]       // Early Modern -eth
    [InlineData("lov'd", 1)]        // elided -ed
    [InlineData("wander'st", 2)]
    [InlineData("heav'n", 1)]
    [InlineData("o'er", 1)]
    [InlineData("belov\u00e8d", 3)] // accented -èd is sounded
    [InlineData("gross's", 2)]
    public void CountsSyllablesOfUnknownWords(string word, int expected) =>
        Assert.Equal(expected, RuleBasedPronouncer.CountSyllables(word));

    [Theory]
    [InlineData("lovest", 2, 0)]    // the stem keeps its stress
    [InlineData("begin", 2, 1)]     // unstressed prefix
    [InlineData("nation", 2, 0)]    // penultimate before -tion
    [InlineData("ability", 4, 1)]   // antepenultimate before -ity
    [InlineData("garden", 2, 0)]    // first syllable by default
    public void PlacesPrimaryStressByRule(string word, int syllables, int expected) =>
        Assert.Equal(expected, RuleBasedPronouncer.PrimaryStress(word, syllables));

    [Theory]
    [InlineData("")]
    [InlineData("'")]
    [InlineData("2024")]
    [InlineData("zzzz")]
    [InlineData("\u00e9t\u00e9")]
    public void NeverFailsAndCountsAtLeastOneSyllable(string word)
    {
        int syllables = RuleBasedPronouncer.CountSyllables(word);
        Assert.True(syllables >= 1);
        Assert.InRange(RuleBasedPronouncer.PrimaryStress(word, syllables), 0, syllables - 1);
        Assert.NotNull(RuleBasedPronouncer.SpellingRhyme(word));
    }

    [Fact]
    public void LongWordsDoNotOverflowBuffers()
    {
        string word = string.Concat(Enumerable.Repeat("ba", 200));
        Assert.Equal(200, RuleBasedPronouncer.CountSyllables(word));
    }
}
