using Xunit.Abstractions;
using YingHub.Moe.Rewards.Pronunciation;
using YingHub.Moe.Testing;

namespace YingHub.Moe.Rewards.Tests;

public sealed class ShakespeareRewardTests(ITestOutputHelper output)
{
    private sealed class FixedPerplexity(double perplexity) : ILanguageModelScorer
    {
        public int SingleCalls { get; private set; }

        public int BatchCalls { get; private set; }

        public double Perplexity(string text)
        {
            SingleCalls++;
            return perplexity;
        }

        public IReadOnlyList<double> Perplexities(IReadOnlyList<string> texts)
        {
            BatchCalls++;
            return texts.Select(_ => perplexity).ToArray();
        }
    }

    private static readonly ShakespeareRewardOptions Weights = new()
    {
        RhymeWeight = 2, MeterWeight = 3, KeywordWeight = 0.7, LineLengthWeight = 0.3, CoherenceWeight = 1.5,
        ModernPenaltyWeight = 4, RepetitionPenaltyWeight = 0.9,
    };

    [SharedDataFact(CmuLexicon.File)]
    public void TotalIsTheWeightedSumOfComponents()
    {
        var reward = new ShakespeareReward(CmuLexicon.Instance, Weights, new FixedPerplexity(100));
        RewardResult result = reward.Score(Texts.Sonnet18 + "\nMy phone, my phone, my phone");
        IReadOnlyDictionary<string, double> c = result.Components;

        double expected = 2 * c["rhyme"] + 3 * c["meter"] + 0.7 * c["keywords"] + 0.3 * c["line_length"]
            + 1.5 * c["coherence"] - 4 * c["modern_penalty"] - 0.9 * c["repetition_penalty"];
        Assert.Equal(expected, result.Total, 12);
        Assert.Equal(7, c.Count);
        Assert.All(c.Values, v => Assert.InRange(v, 0.0, 1.0));
        Assert.True(c["modern_penalty"] > 0 && c["repetition_penalty"] > 0 && c["keywords"] > 0);
    }

    [Fact]
    public void CoherenceIsLinearInLogPerplexityBetweenTheAnchors()
    {
        // Defaults: 1 at perplexity 10, 0 at 1000; perplexity 100 sits halfway in log space.
        static double Coherence(double ppl) =>
            new ShakespeareReward(PronunciationLexicon.Empty, null, new FixedPerplexity(ppl)).Score("Thou art").Components["coherence"];

        Assert.Equal(0.5, Coherence(100), 9);
        Assert.Equal(1.0, Coherence(3), 9);
        Assert.Equal(0.0, Coherence(5000), 9);
        Assert.Equal(0.0, Coherence(double.NaN), 9);
        Assert.True(Coherence(20) > Coherence(40));
    }

    [Fact]
    public void AOneTokenTextIsScoredWithTheVocabularySizeAsItsPerplexity()
    {
        // a real scorer over a real model: "L" is one character token, so nothing is predicted and the perplexity is
        // the model's vocabulary size, 100, halfway between the default anchors 10 and 1000 in log space
        var tokenizer = YingHub.Moe.Core.Tokenizers.CharTokenizer.FromCorpus("abcdefghLo \n");
        TorchSharp.torch.manual_seed(3);
        using var model = new YingHub.Moe.Core.Modules.MoeForCausalLM(new YingHub.Moe.Core.Configuration.MoeModelOptions
            { VocabSize = 100, ContextLength = 8, HiddenSize = 8, NumHeads = 2, NumLayers = 1, NumExperts = 2, TopK = 1 });
        model.eval();
        var reward = new ShakespeareReward(PronunciationLexicon.Empty, null, new YingHub.Moe.Rewards.LanguageModels.CausalLMPerplexityScorer(model, tokenizer));

        Assert.Equal(0.5, reward.Score("L").Components["coherence"], 12);
        IReadOnlyList<RewardResult> batch = reward.ScoreBatch(["L", "a bad"]);
        Assert.Equal(0.5, batch[0].Components["coherence"], 12);
        Assert.InRange(batch[1].Components["coherence"], 0.0, 1.0);
    }

    [Fact]
    public void CoherenceNeedsAScorerAndAWeight()
    {
        Assert.DoesNotContain("coherence", new ShakespeareReward(PronunciationLexicon.Empty).Score("Thou art").Components.Keys);
        var scorer = new FixedPerplexity(10);
        var unweighted = new ShakespeareReward(PronunciationLexicon.Empty, new ShakespeareRewardOptions { CoherenceWeight = 0 }, scorer);
        Assert.DoesNotContain("coherence", unweighted.Score("Thou art").Components.Keys);
        Assert.Equal(0, scorer.SingleCalls);
    }

    [SharedDataFact(CmuLexicon.File)]
    public void BatchScoresEqualSingleScoresAndCallTheModelOnce()
    {
        var scorer = new FixedPerplexity(50);
        var reward = new ShakespeareReward(CmuLexicon.Instance, Weights, scorer);
        string[] texts = [Texts.Sonnet18, Texts.GrayElegy, "", Texts.Couplet, "lol my phone\nlol my phone"];

        IReadOnlyList<RewardResult> batch = reward.ScoreBatch(texts);

        Assert.Equal(1, scorer.BatchCalls);
        Assert.Equal(0, scorer.SingleCalls);
        for (int i = 0; i < texts.Length; i++)
        {
            RewardResult single = reward.Score(texts[i]);
            Assert.Equal(single.Total, batch[i].Total, 12);
            Assert.Equal(single.Components.OrderBy(p => p.Key), batch[i].Components.OrderBy(p => p.Key));
        }
    }

    [Fact]
    public void BatchesWithoutWordsDoNotCallTheModel()
    {
        var scorer = new FixedPerplexity(50);
        var reward = new ShakespeareReward(PronunciationLexicon.Empty, null, scorer);
        Assert.Empty(reward.ScoreBatch([]));
        RewardResult blank = Assert.Single(reward.ScoreBatch(["  \n"]));
        Assert.Equal(0.0, blank.Components["coherence"]);
        Assert.Equal((0, 0), (scorer.BatchCalls, scorer.SingleCalls));
    }

    [Fact]
    public void BatchRejectsNullTexts()
    {
        var reward = new ShakespeareReward(PronunciationLexicon.Empty);
        Assert.Throws<ArgumentNullException>("texts", () => reward.ScoreBatch(null!));
        Assert.Throws<ArgumentNullException>("texts", () => reward.ScoreBatch(["a", null!]));
        Assert.Throws<ArgumentNullException>("text", () => reward.Score(null!));
    }

    [SharedDataFact(CmuLexicon.File)]
    public void CountsFallbackWords()
    {
        ShakespeareReward reward = CmuLexicon.Reward();
        TextAnalysis analysis = reward.Analyze("Thou wander'st o'er the xyzzyq hills");
        // thou, the, hills are in the lexicon; wander'st, o'er, xyzzyq are not.
        Assert.Equal(3, analysis.FallbackWords);
        Assert.Equal(new PronunciationStatistics(6, 3), reward.Statistics);
        Assert.Equal(0.5, reward.Statistics.FallbackRate, 9);
        reward.ResetStatistics();
        Assert.Equal(new PronunciationStatistics(0, 0), reward.Statistics);
    }

    [SharedDataFact(CmuLexicon.File)]
    public void AnalysisReportsWhatTheCliPrints()
    {
        TextAnalysis analysis = CmuLexicon.Reward().Analyze(Texts.Sonnet18);
        output.WriteLine($"{analysis.RhymeScheme}  total {analysis.Reward.Total:F3}  fallback words {analysis.FallbackWords}");
        foreach (LineAnalysis line in analysis.Lines) output.WriteLine($"{line.RhymeLabel} {line.Syllables,2} {line.Stress,-12} {line.Meter:F2}  {line.Text}");
        foreach (var (name, value) in analysis.Reward.Components) output.WriteLine($"{name} = {value:F3}");
        LineAnalysis first = analysis.Lines[0];
        Assert.Equal("Shall I compare thee to a summer's day?", first.Text);
        Assert.Equal((8, 10, "0101010101", 'A'), (first.Words, first.Syllables, first.Stress, first.RhymeLabel));
        Assert.Equal("So long lives this, and this gives life to thee.", analysis.Lines[13].Text);
        Assert.All(analysis.Lines, l => Assert.Equal(l.Syllables, l.Stress.Length));
        Assert.True(analysis.Reward.Components["meter"] > 0.8, $"sonnet meter {analysis.Reward.Components["meter"]}");
    }

    [Theory]
    [InlineData("")]
    [InlineData("\r\n\r\n")]
    [InlineData("1234 5678 !!! ???")]
    [InlineData("\u00e9t\u00e9 \u2603 \U0001F600 na\u00efve caf\u00e9")]
    [InlineData("'''  '' ' -- th' o'")]
    [InlineData("Supercalifragilisticexpialidociousnessesnessesnessesnessesnessesnessesnessesnessesnesses")]
    public void NeverThrowsOnOddInput(string text)
    {
        RewardResult result = new ShakespeareReward(PronunciationLexicon.Empty).Score(text);
        Assert.True(double.IsFinite(result.Total));
    }
}
