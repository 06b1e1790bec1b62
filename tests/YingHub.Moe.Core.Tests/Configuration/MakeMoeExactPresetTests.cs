using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Generation;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tests.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Configuration;

/// <summary>
/// The <c>makemoe-exact</c> preset: its settings, and the model against <see cref="MakeMoeReference"/>, makeMoE.py's
/// forward transcribed line by line over the same weights: the evaluation forward (capacity binding, so drops happen), a training step's loss and
/// gradients (router noise drawn from the same seeded generator, dropout off), and greedy generation by recomputing the
/// window, as makeMoE's <c>generate</c> does.
/// </summary>
public class MakeMoeExactPresetTests
{
    /// <summary>The preset itself (8 layers of 128, 8 experts), built from a seed with its own init.</summary>
    private static MoeForCausalLM Build(long seed, Action<MoeModelOptions>? change = null)
    {
        torch.manual_seed(seed);
        var options = MoePresets.Get("makemoe-exact");
        change?.Invoke(options);
        return new MoeForCausalLM(options);
    }

    private static Tensor RandomIds(long seed, long b, long t)
    {
        using var generator = new torch.Generator((ulong)seed);
        return torch.randint(65, [b, t], generator: generator);
    }

    [Fact]
    public void Makemoe_exact_carries_makemoe_quirks()
    {
        var o = MoePresets.Get("MakeMoE-Exact");
        Assert.Contains("makemoe-exact", MoePresets.Names);
        Assert.Empty(o.GetValidationErrors());
        Assert.Equal((128, 8, 8, 32, 8, 2, 4), (o.HiddenSize, o.NumHeads, o.NumLayers, o.ContextLength, o.NumExperts, o.TopK, o.ExpertMultiplier));
        Assert.Equal(AttentionScaleRule.HiddenSize, o.AttentionScale);                                  // C**-0.5
        Assert.Equal((false, true, true), (o.HasQkvBias, o.HasAttentionOutputBias, o.LmHeadBias));     // bias=False on q/k/v only
        Assert.Equal((1.0, true, CapacityRoundingRule.Floor, CapacityRankingRule.Flat), (o.CapacityFactor, o.CapacityInEvaluation, o.CapacityRounding, o.CapacityRanking));
        Assert.Equal((1.0, 1.0), (o.NoiseTemperatureMin, o.NoiseTemperatureMax));                      // no temperature: τ = 1
        Assert.Equal((InitScheme.KaimingNormal, ResidualInitScheme.Unscaled, BiasInitScheme.Uniform), (o.Init, o.ResidualInit, o.BiasInit));
        Assert.Equal((0.1, 0.1, 0.0), (o.Dropout, o.AttentionDropout, o.EmbeddingDropout));
        Assert.Equal((0.0, 0.0, 0.0, NormPosition.Pre), (o.LoadBalancingCoef, o.ZLossCoef, o.UtilizationKlCoef, o.NormPosition));
        Assert.Equal((ExpertActivation.Relu, RouterKind.NoisyTopK, true), (o.Activation, o.Router, o.NormalizeTopKWeights));
    }

    [Fact]
    public void Evaluation_forward_equals_makemoe_line_by_line_with_drops()
    {
        using var scope = torch.NewDisposeScope();
        using var model = Build(3);
        model.eval();
        var ids = RandomIds(4, 4, 32);
        var targets = RandomIds(5, 4, 32);
        using var _ = torch.no_grad();
        using var output = model.call(new CausalLMInput(ids, targets));
        var (logits, loss) = new MakeMoeReference(model).Forward(ids, targets);

        Tiny.AssertClose(logits, output.Logits, atol: 2e-5, rtol: 1e-4);
        Assert.Equal(loss!.item<float>(), output.LmLoss!.item<float>(), 1e-5);
        // int(4·32·2 / 8 · 1.0) = 32 per expert: a random init's routing overflows some of them
        long dropped = output.RouterStats.Sum(s => s.Dropped.sum().item<long>());
        Assert.True(dropped > 0, "capacity should drop assignments at this batch, or the test does not exercise it");
    }

    [Fact]
    public void A_training_step_has_makemoe_loss_and_gradients()
    {
        using var scope = torch.NewDisposeScope();
        using var model = Build(7, o => { o.Dropout = 0; o.AttentionDropout = 0; }); // dropout masks cannot be matched draw for draw
        model.train();
        var ids = RandomIds(8, 2, 32);
        var targets = RandomIds(9, 2, 32);

        torch.manual_seed(21); // the router noise: one randn_like(logits) per layer, in layer order, on both sides
        using var output = model.call(new CausalLMInput(ids, targets, RouterStatistics: false));
        output.Loss!.backward();
        var ours = Gradients(model);
        model.zero_grad();

        torch.manual_seed(21);
        var (_, loss) = new MakeMoeReference(model).Forward(ids, targets, noise: true);
        loss!.backward();
        var theirs = Gradients(model);

        Assert.Equal(loss.item<float>(), output.Loss.item<float>(), 1e-5);
        foreach (var (name, grad) in theirs) Tiny.AssertClose(grad, ours[name], atol: 2e-5, rtol: 1e-3);
        Assert.Equal(ours.Count, theirs.Count); // every parameter but the noise temperatures (clamped to 1: makeMoE has none)
    }

    [Fact]
    public void Greedy_generation_recomputes_the_window_as_makemoe_generate()
    {
        using var scope = torch.NewDisposeScope();
        using var model = Build(11);
        Assert.False(model.SupportsCachedDecoding);
        long[] prompt = [.. Enumerable.Range(0, 28).Select(i => (long)(i * 7 % 65))]; // 28 + 8 tokens run past the 32-token window
        var ours = new TokenGenerator(model).Generate(prompt, new SamplingOptions { MaxNewTokens = 8, Greedy = true }); // UseCache is on: it falls back

        var reference = new MakeMoeReference(model);
        var idx = prompt.ToList();
        model.eval();
        using (torch.no_grad())
        {
            for (int i = 0; i < 8; i++)
            {
                using var step = torch.NewDisposeScope();
                var cond = idx.Skip(Math.Max(0, idx.Count - 32)).ToArray();                       // idx[:, -block_size:]
                var (logits, _) = reference.Forward(torch.tensor(cond, 1, cond.Length));
                idx.Add(logits[0, -1].argmax().item<long>());                                     // greedy instead of multinomial
            }
        }

        Assert.Equal(idx.Skip(prompt.Length), ours);
    }

    private static Dictionary<string, Tensor> Gradients(MoeForCausalLM model) =>
        model.named_parameters().Where(p => p.parameter.grad is not null && !p.name.EndsWith("noise_temperature", StringComparison.Ordinal))
            .ToDictionary(p => p.name, p => p.parameter.grad!.clone());
}
