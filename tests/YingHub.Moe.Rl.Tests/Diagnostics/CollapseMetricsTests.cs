using YingHub.Moe.Rl.Diagnostics;

namespace YingHub.Moe.Rl.Tests.Diagnostics;

public class CollapseMetricsTests
{
    [Fact]
    public void Token_metrics_match_hand_counts()
    {
        IReadOnlyList<long>[] responses = [[1, 2, 3, 1, 2, 3], [1, 2, 3, 1, 2, 3], [4, 5]];

        var m = CollapseMetrics.OfTokens(responses);

        Assert.Equal(1 - 2 / 3.0, m.IdenticalShare, 12);      // 2 distinct of 3
        Assert.Equal(4 / 11.0, m.Distinct2, 12);              // bigrams 5 + 5 + 1; distinct 12 23 31 45
        Assert.Equal(3 / 8.0, m.Distinct3, 12);               // trigrams 4 + 4 + 0; distinct 123 231 312
        Assert.Equal(0.25, m.RepeatedNgramRate, 12);          // 1 of 4 trigrams repeats in each long response; [4, 5] has none and is left out
        Assert.Equal(14 / 3.0, m.MeanLength, 12);
    }

    [Fact]
    public void Text_metrics_count_lower_cased_words()
    {
        var m = CollapseMetrics.OfTexts(["the cat sat", "The cat, sat!", "a a a a"]);

        Assert.Equal(1 - 2 / 3.0, m.IdenticalShare, 12);      // the first two are the same words
        Assert.Equal(3 / 7.0, m.Distinct2, 12);               // bigrams 2 + 2 + 3; distinct the-cat cat-sat a-a
        Assert.Equal(2 / 4.0, m.Distinct3, 12);               // trigrams 1 + 1 + 2; distinct the-cat-sat a-a-a
        Assert.Equal((0 + 0 + 0.5) / 3, m.RepeatedNgramRate, 12);
        Assert.Equal(10 / 3.0, m.MeanLength, 12);
    }

    [Fact]
    public void The_repeated_ngram_size_is_an_option()
    {
        var m = CollapseMetrics.OfTokens([[7, 7, 7], [1, 2, 3]], repeatedNgramSize: 2);
        Assert.Equal((0.5 + 0) / 2, m.RepeatedNgramRate, 12); // (7,7) twice: the second repeats; (1,2) (2,3) do not
        Assert.Equal(0.0, m.IdenticalShare);
    }

    [Fact]
    public void A_batch_without_ngrams_is_fully_distinct_and_has_no_repeats()
    {
        var m = CollapseMetrics.OfTokens([[1], []]);
        Assert.Equal(new CollapseMetrics(0, 1, 1, 0, 0.5), m);
    }

    [Fact]
    public void A_fully_collapsed_batch()
    {
        var m = CollapseMetrics.OfTokens([[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1]]);
        Assert.Equal(0.75, m.IdenticalShare, 12);
        Assert.Equal(1 / 12.0, m.Distinct2, 12);
        Assert.Equal(1 / 8.0, m.Distinct3, 12);
        Assert.Equal(0.5, m.RepeatedNgramRate, 12);           // trigrams (1,1,1) ×2 each: the second repeats
    }

    [Fact]
    public void Bad_input_is_refused()
    {
        Assert.Throws<ArgumentException>(() => CollapseMetrics.OfTokens([]));
        Assert.Throws<ArgumentException>(() => CollapseMetrics.OfTexts([]));
        Assert.Throws<ArgumentException>(() => CollapseMetrics.OfTokens([null!]));
        Assert.Throws<ArgumentException>(() => CollapseMetrics.OfTexts(["a", null!]));
        Assert.Throws<ArgumentOutOfRangeException>(() => CollapseMetrics.OfTokens([[1]], repeatedNgramSize: 0));
    }
}
