using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Generation;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Rl.BestOfN;
using YingHub.Moe.Rl.Rewards;

namespace YingHub.Moe.Rl.Tests.BestOfN;

public sealed class BestOfNSamplerTests : IDisposable
{
    private const string Vocabulary = "abcdefgh .";
    private const int N = 4, ResponseTokens = 8;
    private readonly MoeForCausalLM _model;
    private readonly CharTokenizer _tokenizer = new(Vocabulary);
    private readonly IReadOnlyList<IReadOnlyList<long>> _prompts;

    public BestOfNSamplerTests()
    {
        // the tiny preset, shrunk: a random model is all best-of-n needs
        MoeModelOptions options = MoePresets.Get("tiny");
        (options.VocabSize, options.HiddenSize, options.NumLayers, options.NumHeads, options.ContextLength) = (Vocabulary.Length, 32, 2, 2, 32);
        torch.manual_seed(3);
        _model = new MoeForCausalLM(options);
        _prompts = new[] { "abc", "h.", "gggg" }.Select(p => (IReadOnlyList<long>)_tokenizer.Encode(p).Select(i => (long)i).ToArray()).ToArray();
    }

    public void Dispose() => _model.Dispose();

    /// <summary>The share of 'e' among the letters, counted here independently of <see cref="TextRewards"/>.</summary>
    private static double ShareOfE(string text)
    {
        var letters = text.Where(char.IsLetter).ToArray();
        return letters.Length == 0 ? 0 : letters.Count(c => c == 'e') / (double)letters.Length;
    }

    private BestOfNResult Sample(long seed) =>
        new BestOfNSampler(_model, _tokenizer, TextRewards.LetterShare('e')).Sample(_prompts, N, new SamplingOptions { Seed = seed, MaxNewTokens = ResponseTokens });

    [Fact]
    public void Each_prompt_keeps_its_best_sample_as_generated_and_scored_independently()
    {
        BestOfNResult result = Sample(seed: 5);

        // reference: the same batch (prompt-major, n copies each) through the Core generator, scored by hand
        var repeated = _prompts.SelectMany(p => Enumerable.Repeat(p, N)).ToArray();
        long[][] samples = new TokenGenerator(_model).GenerateBatch(repeated, new SamplingOptions { Seed = 5, MaxNewTokens = ResponseTokens });
        string[] texts = samples.Select(s => _tokenizer.Decode(s.Select(i => (int)i).ToArray())).ToArray();
        Assert.Equal(_prompts.Count, result.Prompts.Count);
        for (int p = 0; p < _prompts.Count; p++)
        {
            double[] rewards = texts.Skip(p * N).Take(N).Select(ShareOfE).ToArray();
            BestOfNPrompt got = result.Prompts[p];
            Assert.Equal(rewards, got.Rewards.ToArray(), new ToleranceComparer(1e-12));
            Assert.All(got.Rewards, r => Assert.True(got.BestReward >= r));
            int best = Array.IndexOf(rewards, rewards.Max());                   // the first on ties
            Assert.Equal(best, got.BestIndex);
            Assert.Equal(texts[p * N + best], got.BestText);
            Assert.Equal(samples[p * N + best], got.BestTokens);
            Assert.Equal(ShareOfE(got.BestText), got.BestReward, 12);
        }

        double[] bests = result.Prompts.Select(r => r.BestReward).ToArray();
        double mean = bests.Sum() / bests.Length;
        double sampleVariance = bests.Sum(b => (b - mean) * (b - mean)) / (bests.Length - 1);
        Assert.Equal(mean, result.MeanBestReward, 12);
        Assert.Equal(Math.Sqrt(sampleVariance / bests.Length), result.BestRewardStandardError, 12);
        Assert.Equal(texts.Select(ShareOfE).Sum() / texts.Length, result.MeanReward, 12);
        Assert.True(result.MeanBestReward >= result.MeanReward);
        Assert.Equal(Math.Log(N) - (N - 1.0) / N, result.KlDivergence, 12);
    }

    [Fact]
    public void Ties_go_to_the_first_sample()
    {
        var result = new BestOfNSampler(_model, _tokenizer, new FunctionReward("flat", _ => 1)).Sample(_prompts, N, new SamplingOptions { Seed = 2, MaxNewTokens = 3 });
        Assert.All(result.Prompts, p => Assert.Equal(0, p.BestIndex));
        Assert.Equal(0.0, result.Prompts.Select(p => p.BestReward - 1).Sum());
    }

    [Fact]
    public void The_same_seed_gives_the_same_result_and_another_seed_another()
    {
        BestOfNResult a = Sample(seed: 9), b = Sample(seed: 9), c = Sample(seed: 10);
        Assert.Equal(a.Prompts.Select(p => p.BestText), b.Prompts.Select(p => p.BestText));
        Assert.Equal(a.Prompts.SelectMany(p => p.Rewards), b.Prompts.SelectMany(p => p.Rewards));
        Assert.NotEqual(a.Prompts.Select(p => p.BestText), c.Prompts.Select(p => p.BestText));
    }

    [Fact]
    public void Kl_divergence_is_log_n_minus_n_minus_one_over_n()
    {
        Assert.Equal(0.0, BestOfNSampler.KlDivergence(1));
        Assert.Equal(Math.Log(4) - 0.75, BestOfNSampler.KlDivergence(4), 15);
        Assert.Equal(Math.Log(64) - 63 / 64.0, BestOfNSampler.KlDivergence(64), 15);
        Assert.Throws<ArgumentOutOfRangeException>(() => BestOfNSampler.KlDivergence(0));
    }

    [Fact]
    public void A_single_prompt_has_no_standard_error()
    {
        var result = new BestOfNSampler(_model, _tokenizer, TextRewards.LetterShare('e')).Sample([_prompts[0]], 2, new SamplingOptions { Seed = 1, MaxNewTokens = 2 });
        Assert.True(double.IsNaN(result.BestRewardStandardError));
    }

    [Fact]
    public void Bad_arguments_are_refused()
    {
        var sampler = new BestOfNSampler(_model, _tokenizer, TextRewards.LetterShare('e'));
        var sampling = new SamplingOptions { Seed = 1, MaxNewTokens = 2 };
        Assert.Throws<ArgumentOutOfRangeException>(() => sampler.Sample(_prompts, 0, sampling));
        Assert.Throws<ArgumentException>(() => sampler.Sample([], 2, sampling));
        Assert.Contains("Prompt 1", Assert.Throws<ArgumentException>(() => sampler.Sample([_prompts[0], []], 2, sampling)).Message);
        Assert.Throws<ArgumentException>(() => new BestOfNSampler(_model, new CharTokenizer(Vocabulary + "xyz"), TextRewards.LetterShare('e')));
        Assert.Throws<InvalidOperationException>(() =>
            new BestOfNSampler(_model, _tokenizer, new FunctionReward("nan", _ => double.NaN)).Sample(_prompts, 2, sampling));
    }

    private sealed class ToleranceComparer(double tolerance) : IEqualityComparer<double>
    {
        public bool Equals(double x, double y) => Math.Abs(x - y) <= tolerance;

        public int GetHashCode(double obj) => 0;
    }
}
