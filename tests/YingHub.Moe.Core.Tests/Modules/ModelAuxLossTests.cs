using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Modules;

/// <summary>
/// The auxiliary losses a <see cref="MoeForCausalLM"/> reports, with two MoE layers whose routers are planted (zero
/// weights, chosen biases: every token gets the same logits), against values computed by hand from the formulas:
/// each reported loss is the mean over the MoE layers, and the total loss adds coefficient × each of them.
/// </summary>
public class ModelAuxLossTests
{
    private const int E = 4, K = 2;

    /// <summary>The planted router bias (the logits of every token) of each MoE layer.</summary>
    private static readonly double[][] Biases = [[2.0, 1.0, 0.0, -1.0], [0.0, 0.5, 3.0, -2.0]];

    private static double[] Softmax(double[] z)
    {
        double max = z.Max();
        double[] e = z.Select(v => Math.Exp(v - max)).ToArray();
        return e.Select(v => v / e.Sum()).ToArray();
    }

    /// <summary>E · Σ f_i P_i: every token picks the same k experts (f = 1/k each), P = softmax(bias).</summary>
    private static double LoadBalancing(double[] bias)
    {
        double[] p = Softmax(bias);
        int[] top = Enumerable.Range(0, E).OrderByDescending(i => bias[i]).Take(K).ToArray();
        return E * top.Sum(i => p[i] / K);
    }

    /// <summary>(logsumexp bias)², the same for every token.</summary>
    private static double ZLoss(double[] bias)
    {
        double max = bias.Max();
        double lse = max + Math.Log(bias.Sum(v => Math.Exp(v - max)));
        return lse * lse;
    }

    /// <summary>KL(uniform ‖ q) with an empty window: q = softmax(bias).</summary>
    private static double WindowKl(double[] bias) => Softmax(bias).Sum(q => (1.0 / E) * (Math.Log(1.0 / E) - Math.Log(q)));

    [Fact]
    public void Aux_losses_are_the_mean_over_moe_layers_of_hand_computed_values()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(13);
        var options = Tiny.Options(o =>
        {
            o.NumExperts = E; o.TopK = K; o.NumLayers = 2; o.MoeEvery = 1; // two MoE layers
            o.LoadBalancingCoef = 0.1; o.ZLossCoef = 0.01; o.UtilizationKlCoef = 0.5;
        });
        using var model = new MoeForCausalLM(options);
        model.eval(); // no dropout, no capacity; the (empty) utilization window stays empty
        using (torch.no_grad())
        {
            for (int layer = 0; layer < 2; layer++)
            {
                Tiny.Param(model, $"layers.{layer}.block_sparse_moe.gate.weight").zero_();
                Tiny.Param(model, $"layers.{layer}.block_sparse_moe.gate.bias").copy_(torch.tensor(Biases[layer].Select(b => (float)b).ToArray()));
            }
        }

        var ids = torch.tensor(new long[] { 1, 5, 2, 7, 3, 3, 0, 9 }, 2, 4);
        var labels = torch.tensor(new long[] { 5, 2, 7, 3, 3, 0, 9, 4 }, 2, 4);
        using var output = model.call(new CausalLMInput(ids, labels));

        double lb = Biases.Average(LoadBalancing), z = Biases.Average(ZLoss), kl = Biases.Average(WindowKl);
        Assert.Equal(lb, output.LoadBalancingLoss.item<float>(), 5);
        Assert.Equal(z, output.ZLoss.item<float>(), 4);
        Assert.Equal(kl, output.UtilizationKlLoss.item<float>(), 5);
        Assert.Equal(0.1 * lb + 0.01 * z + 0.5 * kl, output.Loss!.item<float>() - output.LmLoss!.item<float>(), 5);

        // the hand values themselves: layer 0 picks experts 0, 1; layer 1 picks 2, 1
        Assert.Equal(4 * (Softmax(Biases[0])[0] + Softmax(Biases[0])[1]) / 2, LoadBalancing(Biases[0]), 12);
        Assert.Equal(4 * (Softmax(Biases[1])[2] + Softmax(Biases[1])[1]) / 2, LoadBalancing(Biases[1]), 12);
    }
}
