using YingHub.Moe.Rewards.Pronunciation;

namespace YingHub.Moe.Rewards.Tests.Scoring;

/// <summary>The components that need no lexicon, on hand-made texts with hand-computed values.</summary>
public sealed class TextComponentTests
{
    private static double Component(string text, string name, ShakespeareRewardOptions? options = null) =>
        new ShakespeareReward(PronunciationLexicon.Empty, options).Score(text).Components[name];

    [Fact]
    public void KeywordsAreRatedPerLineAndSaturate()
    {
        // line 1: thou, art -> min(1, 2/1) = 1; line 2: none -> 0; line 3: 'tis, thee, thy -> 1. Mean 2/3.
        const string text = "Thou art fair\nThe sun is warm\n'Tis thee and thy love";
        Assert.Equal(2.0 / 3, Component(text, RewardComponentNames.Keywords), 9);
    }

    [Fact]
    public void KeywordsAreConfigurableAndMatchWholeWords()
    {
        var options = new ShakespeareRewardOptions { Keywords = ["art", "good morrow"], KeywordsPerLineForFullScore = 2 };
        // line 1: art, art, art -> min(1, 3/2) = 1; line 2: heart, artful, Art's are other words -> 0;
        // line 3: one "good morrow" -> 1/2; line 4: "good" alone -> 0. Mean (1 + 0 + 0.5 + 0) / 4.
        const string text = "Art, art and ART\nMy heart is artful, Art's\nGood morrow, sir\nGood day";
        Assert.Equal(1.5 / 4, Component(text, RewardComponentNames.Keywords, options), 9);
    }

    [Fact]
    public void ModernWordsArePenalisedOnWordBoundaries()
    {
        var options = new ShakespeareRewardOptions { ModernWords = ["phone", "social media"], ModernWordsPerLineForFullPenalty = 1 };
        // Matches: "phone" in line 2 and "Social media" in line 3 (not telephone, phones, or "media social").
        // Penalty = min(1, 2 / (4 lines x 1)) = 0.5.
        const string text = "My telephone rings\nI hold my phone\nSocial  media, and media social\nPhones everywhere";
        Assert.Equal(0.5, Component(text, RewardComponentNames.ModernPenalty, options), 9);
    }

    [Fact]
    public void ModernPenaltySaturatesAtOne()
    {
        // Defaults: full penalty at 0.25 modern words per line; 2 in 1 line -> min(1, 2 / 0.25) = 1.
        Assert.Equal(1.0, Component("My computer and my phone", RewardComponentNames.ModernPenalty), 9);
        Assert.Equal(0.0, Component("Thou art more lovely", RewardComponentNames.ModernPenalty), 9);
    }

    [Fact]
    public void LineLengthIsLinearAroundTheTarget()
    {
        // Target 8, tolerance 8 (defaults): 8 words -> 1; 4 -> 0.5; 12 -> 0.5; 20 -> 0. Mean 0.5.
        // "summer's" is one word, "day-light" two.
        const string text = """
            Shall I compare thee to a summer's day?
            Thou art day-light.
            one two three four five six seven eight nine ten eleven twelve
            a b c d e f g h i j k l m n o p q r s t
            """;
        Assert.Equal(0.5, Component(text, RewardComponentNames.LineLength), 9);
    }

    [Fact]
    public void RepeatedLinesArePenalised()
    {
        // Lines: 1 of the 3 repeats an earlier one -> 1 / (3 - 1) = 0.5. Trigrams of "a b c a b c d e f": 7, of which
        // one ("a b c") repeats -> 1/7. Penalty = max(0.5, 1/7).
        Assert.Equal(0.5, Component("a b c\nA b c!\nd e f", RewardComponentNames.RepetitionPenalty), 9);
    }

    [Fact]
    public void RepeatedNgramsArePenalised()
    {
        // 10 words, 8 trigrams; "the cat sat", "cat sat on", "sat on the" each recur once -> 3/8.
        Assert.Equal(3.0 / 8, Component("the cat sat on the cat sat on the mat", RewardComponentNames.RepetitionPenalty), 9);
        var bigrams = new ShakespeareRewardOptions { RepetitionNgramSize = 2 };
        // 9 bigrams; "the cat", "cat sat", "sat on", "on the" recur -> 4/9.
        Assert.Equal(4.0 / 9, Component("the cat sat on the cat sat on the mat", RewardComponentNames.RepetitionPenalty, bigrams), 9);
        Assert.Equal(0.0, Component("no word here comes twice", RewardComponentNames.RepetitionPenalty), 9);
    }

    [Fact]
    public void EmptyTextScoresZeroEverywhere()
    {
        RewardResult result = new ShakespeareReward(PronunciationLexicon.Empty).Score(" \n\n ...\n");
        Assert.Equal(0.0, result.Total);
        Assert.All(result.Components.Values, v => Assert.Equal(0.0, v));
    }
}
