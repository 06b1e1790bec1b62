using TorchSharp;
using YingHub.Moe.Core.Losses;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Losses;

public class RouterLossesTests
{
    private static readonly float[] Probs = [0.7f, 0.2f, 0.1f, 0.1f, 0.6f, 0.3f]; // (N = 2, E = 3)

    [Fact]
    public void Load_balancing_equals_the_hand_computed_value()
    {
        using var scope = torch.NewDisposeScope();
        var probs = torch.tensor(Probs, 2, 3);
        var indices = torch.tensor(new long[] { 0, 1 }, 2, 1);
        // f = [1/2, 1/2, 0], P = [0.4, 0.4, 0.2]: 3 * (0.5 * 0.4 + 0.5 * 0.4) = 1.2
        Assert.Equal(1.2, RouterLosses.LoadBalancing(probs, indices).item<float>(), 5);
    }

    [Fact]
    public void Load_balancing_is_one_at_perfect_balance_and_E_when_collapsed()
    {
        using var scope = torch.NewDisposeScope();
        var uniform = torch.full(8, 4, 0.25f);
        var balanced = torch.tensor(new long[] { 0, 1, 2, 3, 1, 0, 3, 2 }, 4, 2);
        Assert.Equal(1.0, RouterLosses.LoadBalancing(uniform, balanced).item<float>(), 5);
        var collapsed = torch.zeros(8, 4);
        collapsed[.., 0] = torch.tensor(1f);
        Assert.Equal(4.0, RouterLosses.LoadBalancing(collapsed, torch.zeros(8, 1, dtype: ScalarType.Int64)).item<float>(), 5);
    }

    [Fact]
    public void Z_loss_equals_the_hand_computed_value()
    {
        using var scope = torch.NewDisposeScope();
        var logits = torch.tensor(new[] { 1f, 2f, 3f, 0f, 0f, 0f }, 2, 3);
        double lse1 = Math.Log(Math.Exp(1) + Math.Exp(2) + Math.Exp(3)), lse2 = Math.Log(3);
        Assert.Equal((lse1 * lse1 + lse2 * lse2) / 2, RouterLosses.ZLoss(logits).item<float>(), 4);
    }

    [Fact]
    public void Window_kl_equals_the_hand_computed_value_and_vanishes_when_uniform()
    {
        using var scope = torch.NewDisposeScope();
        var probs = torch.tensor(Probs, 2, 3);
        var past = torch.tensor(new[] { 3f, 1f, 0f });
        // load = past + N * k * mean(probs) = [3.8, 1.8, 0.4], q = load / 6
        double[] q = [3.8 / 6, 1.8 / 6, 0.4 / 6];
        double expected = q.Sum(qi => (1.0 / 3) * (Math.Log(1.0 / 3) - Math.Log(qi)));
        Assert.Equal(expected, RouterLosses.WindowKlToUniform(past, probs, topK: 1).item<float>(), 5);

        var uniform = torch.full(4, 3, 1f / 3);
        Assert.Equal(0.0, RouterLosses.WindowKlToUniform(torch.tensor(new[] { 5f, 5f, 5f }), uniform, topK: 2).item<float>(), 5);

        // the current batch's probabilities carry the gradient
        var p = torch.tensor(Probs, 2, 3).requires_grad_(true);
        RouterLosses.WindowKlToUniform(past, p, topK: 1).backward();
        Assert.True(p.grad!.abs().sum().item<float>() > 0);
    }

    [Fact]
    public void Utilization_is_the_share_of_experts_at_or_above_the_threshold_of_the_fair_load()
    {
        using var scope = torch.NewDisposeScope();
        // fair load 3, threshold 0.5 * 3 = 1.5: experts 0, 1, 3 count
        Assert.Equal(0.75, RouterLosses.Utilization(torch.tensor(new long[] { 5, 3, 0, 4 }), 0.5).item<float>(), 6);
        Assert.Equal(0.25, RouterLosses.Utilization(torch.tensor(new long[] { 0, 12, 0, 0 }), 0.5).item<float>(), 6);
    }

    [Fact]
    public void Masked_losses_leave_out_the_masked_tokens_by_hand()
    {
        using var scope = torch.NewDisposeScope();
        // three tokens, the third masked (padding or an ignored label)
        var probs = torch.tensor(new[] { 0.7f, 0.2f, 0.1f, 0.1f, 0.6f, 0.3f, 0.2f, 0.2f, 0.6f }, 3, 3);
        var indices = torch.tensor(new long[] { 0, 1, 2 }, 3, 1);
        var mask = torch.tensor(new[] { true, true, false });
        // counted: f = [1/2, 1/2, 0], P = [0.4, 0.4, 0.2] → 1.2; all three would give f = P = 1/3 → 1.0
        Assert.Equal(1.2, RouterLosses.LoadBalancing(probs, indices, mask).item<float>(), 5);
        Assert.Equal(1.0, RouterLosses.LoadBalancing(probs, indices).item<float>(), 5);

        var logits = torch.tensor(new[] { 1f, 2f, 3f, 0f, 0f, 0f, 5f, 5f, 5f }, 3, 3);
        double lse1 = Math.Log(Math.Exp(1) + Math.Exp(2) + Math.Exp(3)), lse2 = Math.Log(3);
        Assert.Equal((lse1 * lse1 + lse2 * lse2) / 2, RouterLosses.ZLoss(logits, mask).item<float>(), 4);

        // window KL: load = past + Σ over counted tokens of probs · k = [3.8, 1.8, 0.4]
        var past = torch.tensor(new[] { 3f, 1f, 0f });
        double[] q = [3.8 / 6, 1.8 / 6, 0.4 / 6];
        double expected = q.Sum(qi => (1.0 / 3) * (Math.Log(1.0 / 3) - Math.Log(qi)));
        Assert.Equal(expected, RouterLosses.WindowKlToUniform(past, probs, topK: 1, mask).item<float>(), 5);

        // counts of k = 2 choices: rows 0 and 2 counted → expert 0 twice, 1 once, 2 once
        var pairs = torch.tensor(new long[] { 0, 1, 1, 2, 2, 0 }, 3, 2);
        Assert.Equal(new[] { 2f, 1f, 1f }, RouterLosses.Counts(pairs, 3, torch.tensor(new[] { true, false, true })).data<float>().ToArray());

        // nothing counted: zero losses, not NaN
        var none = torch.zeros(3, dtype: ScalarType.Bool);
        Assert.Equal(0.0, RouterLosses.LoadBalancing(probs, indices, none).item<float>());
        Assert.Equal(0.0, RouterLosses.ZLoss(logits, none).item<float>());
        Assert.Equal(0.0, RouterLosses.WindowKlToUniform(torch.zeros(3), probs, topK: 1, none).item<float>());

        // a masked token's non-finite value does not leak into the loss (a fill, not a product with 0)
        var withInf = torch.tensor(new[] { 1f, 2f, 3f, 0f, 0f, 0f, float.PositiveInfinity, 5f, 5f }, 3, 3);
        Assert.Equal((lse1 * lse1 + lse2 * lse2) / 2, RouterLosses.ZLoss(withInf, mask).item<float>(), 4);
    }
}
