using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Generation;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tests.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Generation;

/// <summary>
/// The sampler's wiring in <see cref="TokenGenerator"/>: temperature (plain and cosine-annealed with its floor),
/// top-k and top-p, against an independent reference that computes each step's distribution on the host in doubles
/// from a plain full forward and draws from it with an identically seeded generator.
/// </summary>
public class SamplerWiringTests
{
    private const int Vocab = 23;
    private const ulong Seed = 1234;

    /// <summary>A tiny model whose logits spread over several units (init std 1), so the temperature matters.</summary>
    private static MoeForCausalLM Model()
    {
        torch.manual_seed(31);
        var model = new MoeForCausalLM(Tiny.Options(o => { o.VocabSize = Vocab; o.ContextLength = 24; o.InitStd = 1.0; }));
        model.eval();
        return model;
    }

    /// <summary>The reference distribution of one step: logits / T, then top-k, then top-p (HF order), softmax; all in doubles.</summary>
    private static double[] ReferenceProbs(double[] logits, double temperature, int? topK, double? topP)
    {
        double[] z = logits.Select(l => l / temperature).ToArray();
        var keep = Enumerable.Repeat(true, z.Length).ToArray();
        int[] byValue = Enumerable.Range(0, z.Length).OrderByDescending(i => z[i]).ToArray();
        if (topK is { } k)
            for (int r = k; r < byValue.Length; r++) keep[byValue[r]] = false;
        if (topP is { } p)
        {
            double[] pk = Softmax(z, keep);
            double before = 0;
            foreach (int i in byValue.Where(i => keep[i]))
            {
                if (before >= p) keep[i] = false; // the mass before it already reaches p
                before += pk[i];
            }
        }

        return Softmax(z, keep);
    }

    private static double[] Softmax(double[] z, bool[] keep)
    {
        double max = z.Where((_, i) => keep[i]).Max();
        double[] e = z.Select((v, i) => keep[i] ? Math.Exp(v - max) : 0).ToArray();
        double sum = e.Sum();
        return e.Select(v => v / sum).ToArray();
    }

    /// <summary>Decodes by hand: a full forward per token, the reference distribution, one multinomial draw per step.</summary>
    private static long[] Reference(MoeForCausalLM model, long[] prompt, int n, Func<int, double> temperatureAt, int? topK, double? topP)
    {
        var tokens = prompt.ToList();
        var generator = new torch.Generator(Seed);
        using var _ = torch.no_grad();
        for (int i = 0; i < n; i++)
        {
            using var scope = torch.NewDisposeScope();
            var logits = model.call(new CausalLMInput(torch.tensor(tokens.ToArray(), 1, tokens.Count))).Logits[0, -1]; // (V)
            double[] probs = ReferenceProbs(Tiny.Values(logits), temperatureAt(i), topK, topP);
            var p = torch.tensor(probs.Select(x => (float)x).ToArray(), 1, Vocab);                                      // (1, V)
            tokens.Add(torch.multinomial(p, 1, generator: generator).item<long>());
        }

        return tokens.Skip(prompt.Length).ToArray();
    }

    public static TheoryData<double, int?, double?> Settings => new()
    {
        { 0.6, null, null },
        { 1.7, null, null },
        { 1.7, 3, null },
        { 1.3, null, 0.7 },
        { 0.9, 8, 0.8 },
    };

    [Theory]
    [MemberData(nameof(Settings))]
    public void Temperature_top_k_and_top_p_match_the_reference(double temperature, int? topK, double? topP)
    {
        using var model = Model();
        long[] prompt = [3, 1, 4];
        const int N = 16;
        var options = new SamplingOptions { MaxNewTokens = N, Temperature = temperature, TopK = topK, TopP = topP, Seed = (long)Seed, UseCache = false };
        long[] actual = new TokenGenerator(model).Generate(prompt, options);
        Assert.Equal(Reference(model, prompt, N, _ => temperature, topK, topP), actual);
    }

    [Theory]
    [InlineData(2.0, null)]   // default floor: 0.1 · T
    [InlineData(2.0, 0.9)]
    public void Annealed_temperature_matches_the_reference_schedule_with_its_floor(double temperature, double? minTemperature)
    {
        using var model = Model();
        long[] prompt = [7, 2];
        const int N = 16;
        double floor = minTemperature ?? 0.1 * temperature;
        var options = new SamplingOptions
        {
            MaxNewTokens = N, Temperature = temperature, AnnealTemperature = true, MinTemperature = minTemperature, Seed = (long)Seed, UseCache = false,
        };
        long[] actual = new TokenGenerator(model).Generate(prompt, options);
        Assert.Equal(Reference(model, prompt, N, i => floor + (temperature - floor) * (0.5 + 0.5 * Math.Cos(Math.PI * i / N)), null, null), actual);
    }

    [Fact]
    public void The_annealed_temperature_ends_near_its_floor_not_near_zero()
    {
        var byDefault = new SamplingOptions { Temperature = 0.8, AnnealTemperature = true };
        Assert.Equal(0.08, byDefault.EffectiveMinTemperature, 12);
        Assert.Equal(0.8, byDefault.TemperatureAt(0, 100), 12);
        Assert.Equal(0.08 + 0.72 * (0.5 + 0.5 * Math.Cos(Math.PI * 99 / 100)), byDefault.TemperatureAt(99, 100), 12); // ≈ 0.0802
        Assert.True(byDefault.TemperatureAt(99, 100) >= 0.08);

        var floored = new SamplingOptions { Temperature = 1.0, AnnealTemperature = true, MinTemperature = 0.5 };
        Assert.Equal(0.75, floored.TemperatureAt(5, 10), 12);
        Assert.Equal(0.5, floored.TemperatureAt(10, 10), 12);
        Assert.Equal(1.0, new SamplingOptions { Temperature = 1.0, MinTemperature = 0.5 }.TemperatureAt(9, 10)); // no annealing: T
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(-0.1)]
    [InlineData(1.5)]
    [InlineData(double.NaN)]
    public void A_floor_outside_zero_to_T_is_named(double minTemperature)
    {
        var options = new SamplingOptions { Temperature = 1.2, AnnealTemperature = true, MinTemperature = minTemperature };
        OptionError error = Assert.Single(options.GetValidationErrors());
        Assert.Equal(nameof(SamplingOptions.MinTemperature), error.Field);
        Assert.StartsWith(FormattableString.Invariant($"MinTemperature = {minTemperature} is invalid; allowed: (0, Temperature = 1.2]"), error.Message);
        Assert.Empty(new SamplingOptions { Temperature = 1.2, MinTemperature = 1.2 }.GetValidationErrors());
    }
}
