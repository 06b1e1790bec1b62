using TorchSharp;
using YingHub.Moe.Core.Generation;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tests.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Generation;

/// <summary>
/// The sampler's wiring in <see cref="TokenGenerator"/>: temperature,
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
        { 0.8, 6, null },
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
}
