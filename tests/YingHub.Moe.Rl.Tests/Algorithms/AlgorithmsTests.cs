using TorchSharp;
using YingHub.Moe.Rl.Algorithms;
using static TorchSharp.torch;

namespace YingHub.Moe.Rl.Tests.Algorithms;

/// <summary>GAE, whitening, GRPO advantages, PPO's clipped losses, KL estimators and the KL controller against hand-computed numbers.</summary>
public class AlgorithmsTests
{
    private static float[] Values(Tensor t) => t.detach().to(ScalarType.Float32).contiguous().data<float>().ToArray();

    private static void Close(double[] expected, Tensor actual, double tolerance = 1e-5)
    {
        float[] a = Values(actual);
        Assert.Equal(expected.Length, a.Length);
        for (int i = 0; i < a.Length; i++) Assert.True(Math.Abs(expected[i] - a[i]) <= tolerance, $"element {i}: expected {expected[i]}, got {a[i]}");
    }

    [Fact]
    public void Gae_matches_the_hand_computed_advantages_and_stops_at_the_end_of_each_response()
    {
        using var scope = torch.NewDisposeScope();
        // row 0 (the check): γ 1, λ 0.95 → [0.43675, 0.565, 0.7]
        var rewards = torch.tensor(new[] { 0f, 0f, 1f }, 1, 3);
        var values = torch.tensor(new[] { 0.5f, 0.4f, 0.3f }, 1, 3);
        var all = torch.ones(1, 3, dtype: ScalarType.Bool);
        var (advantages, returns) = Advantages.Gae(rewards, values, all, gamma: 1, lambda: 0.95);
        Close([0.43675, 0.565, 0.7], advantages);
        Close([0.93675, 0.965, 1.0], returns);

        // row 1 ends after two tokens (padding after, with values that must not leak back): γ 0.9, λ 0.5
        // δ1 = 1 − 0.1 = 0.9; δ0 = 0.9 · 0.1 − 0.2 = −0.11; A0 = −0.11 + 0.45 · 0.9 = 0.295
        var r2 = torch.tensor(new[] { 0f, 1f, 5f }, 1, 3);
        var v2 = torch.tensor(new[] { 0.2f, 0.1f, 9f }, 1, 3);
        var m2 = torch.tensor(new[] { true, true, false }, 1, 3);
        var (a2, ret2) = Advantages.Gae(r2, v2, m2, gamma: 0.9, lambda: 0.5);
        Close([0.295, 0.9, 0], a2);
        Close([0.495, 1.0, 0], ret2);

        // both rows in one batch give the same numbers
        var (both, _) = Advantages.Gae(torch.cat([rewards, r2]), torch.cat([values, v2]), torch.cat([all, m2]), gamma: 0.9, lambda: 0.5);
        Close(Values(a2).Select(x => (double)x).ToArray(), both[1]);
        Assert.Throws<ArgumentException>(() => Advantages.Gae(rewards, values, all, gamma: 1.5, lambda: 0.95));
    }

    [Fact]
    public void Whitening_uses_the_masked_mean_and_unbiased_variance()
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.tensor(new[] { 1f, 2f, 3f, 100f }, 1, 4);
        var mask = torch.tensor(new[] { true, true, true, false }, 1, 4);
        // mean 2, unbiased variance (1 + 0 + 1) / 2 = 1
        Close([-1, 0, 1, 0], Advantages.Whiten(x, mask), 1e-4);
        Close([1, 2, 3, 0], Advantages.Whiten(x, mask, shiftMean: false), 1e-4);
        Assert.Throws<ArgumentException>(() => Advantages.Whiten(x, torch.tensor(new[] { true, false, false, false }, 1, 4)));
    }

    [Fact]
    public void Grpo_normalises_each_group_and_gives_every_response_token_its_advantage()
    {
        using var scope = torch.NewDisposeScope();
        var rewards = torch.tensor(new[] { 1f, 3f, 2f, 2f });                 // groups [1, 3] and [2, 2]
        var mask = torch.tensor(new[] { true, true, true, false, true, true, true, true }, 4, 2);
        double a = 1 / (Math.Sqrt(2) + 1e-4);                                  // (r − 2) / (std 1.414 + ε)
        Close([-a, -a, a, 0, 0, 0, 0, 0], Advantages.Grpo(rewards, groupSize: 2, mask), 1e-5);
        Assert.Throws<ArgumentException>(() => Advantages.Grpo(torch.ones(3), groupSize: 2, torch.ones(3, 2, dtype: ScalarType.Bool)));
    }

    [Fact]
    public void The_clipped_surrogate_takes_the_pessimistic_term_and_its_gradient()
    {
        using var scope = torch.NewDisposeScope();
        // ratios 1.5 and 0.5 (ε 0.2), a third token masked out with a NaN log-prob
        var newLogProbs = torch.tensor(new[] { (float)Math.Log(1.5), (float)Math.Log(0.5), float.NaN }, 1, 3).requires_grad_(true);
        var old = torch.zeros(1, 3);
        var mask = torch.tensor(new[] { true, true, false }, 1, 3);
        var positive = torch.ones(1, 3);
        using var up = PpoLosses.Policy(newLogProbs, old, positive, mask, clip: 0.2);
        // A = 1: max(−1.5, −1.2) = −1.2 (clipped), max(−0.5, −0.8) = −0.5 → mean −0.85
        Assert.Equal(-0.85, up.Loss.item<float>(), 5);
        Assert.Equal(0.5, up.ClipFraction.item<float>(), 5);
        Assert.Equal(0.5 * (Math.Pow(Math.Log(1.5), 2) + Math.Pow(Math.Log(0.5), 2)) / 2, up.ApproxKl.item<float>(), 5);
        up.Loss.backward();
        // the clipped token gets no gradient; the other −A · ρ / 2 = −0.25
        Close([0, -0.25, 0], newLogProbs.grad!);

        using var down = PpoLosses.Policy(newLogProbs, old, -positive, mask, clip: 0.2);
        // A = −1: max(1.5, 1.2) = 1.5, max(0.5, 0.8) = 0.8 → mean 1.15
        Assert.Equal(1.15, down.Loss.item<float>(), 5);
    }

    [Fact]
    public void The_clipped_value_loss_takes_the_larger_error()
    {
        using var scope = torch.NewDisposeScope();
        var values = torch.tensor(new[] { 1.0f, 0.0f }, 1, 2);
        var old = torch.tensor(new[] { 0.5f, 0.5f }, 1, 2);
        var returns = torch.tensor(new[] { 1.2f, 0.0f }, 1, 2);
        var mask = torch.ones(1, 2, dtype: ScalarType.Bool);
        // token 0: (1 − 1.2)² = 0.04 vs (0.7 − 1.2)² = 0.25; token 1: 0 vs (0.3 − 0)² = 0.09 → ½ · (0.25 + 0.09) / 2
        using var loss = PpoLosses.Value(values, old, returns, mask, clip: 0.2);
        Assert.Equal(0.085, loss.Loss.item<float>(), 5);
        Assert.Equal(1.0, loss.ClipFraction.item<float>(), 5);
        using var unclipped = PpoLosses.Value(values, old, returns, mask, clip: double.PositiveInfinity);
        Assert.Equal(0.5 * (0.04 + 0) / 2, unclipped.Loss.item<float>(), 5);
    }

    [Fact]
    public void Kl_estimators_match_their_formulas()
    {
        using var scope = torch.NewDisposeScope();
        var logProbs = torch.tensor(new[] { (float)Math.Log(0.5), (float)Math.Log(0.25), 0f }, 1, 3);
        var reference = torch.tensor(new[] { (float)Math.Log(0.25), (float)Math.Log(0.5), -9f }, 1, 3);
        var mask = torch.tensor(new[] { true, true, false }, 1, 3);
        double ln2 = Math.Log(2);
        Close([ln2, -ln2, 0], Kl.PerToken(logProbs, reference, mask, KlEstimator.K1));
        Close([0.5 + ln2 - 1, 2 - ln2 - 1, 0], Kl.PerToken(logProbs, reference, mask, KlEstimator.K3));
    }

    [Fact]
    public void The_adaptive_controller_follows_ziegler_and_the_fixed_one_stays()
    {
        var adaptive = new KlController(beta: 0.1, target: 6, horizon: 10_000);
        Assert.Equal(0.1 * (1 + 0.2 * 32 / 10_000.0), adaptive.Update(meanKl: 9, sequences: 32), 12);   // error 0.5 clipped to 0.2
        double before = adaptive.Beta;
        Assert.Equal(before * (1 - 0.2 * 32 / 10_000.0), adaptive.Update(meanKl: 3, sequences: 32), 12); // error −0.5 clipped to −0.2
        before = adaptive.Beta;
        Assert.Equal(before * (1 + 0.1 * 64 / 10_000.0), adaptive.Update(meanKl: 6.6, sequences: 64), 12); // error 0.1, unclipped
        var fixedBeta = new KlController(beta: 0.05);
        Assert.Equal(0.05, fixedBeta.Update(meanKl: 100, sequences: 8));
        Assert.Throws<ArgumentException>(() => new KlController(beta: -1));
        Assert.Throws<ArgumentException>(() => adaptive.Update(double.NaN, 1));
    }

    [Fact]
    public void Token_rewards_put_the_task_score_on_the_last_response_token_and_the_kl_penalty_everywhere()
    {
        using var scope = torch.NewDisposeScope();
        var task = torch.tensor(new[] { 2f, -1f });
        var kl = torch.tensor(new[] { 0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 9f }, 2, 3);
        var mask = torch.tensor(new[] { true, true, true, true, true, false }, 2, 3); // row 1 ends after two tokens
        var (rewards, taskPart, penalty) = TokenRewards.Compute(task, kl, mask, beta: 0.5);
        Close([0, 0, 2, 0, -1, 0], taskPart);
        Close([-0.05, -0.1, -0.15, -0.2, -0.25, 0], penalty);
        Close([-0.05, -0.1, 1.85, -0.2, -1.25, 0], rewards);
        Assert.Throws<ArgumentException>(() => TokenRewards.Compute(task, kl, torch.tensor(new[] { true, true, true, false, false, false }, 2, 3), beta: 0.5));
    }

    [Fact]
    public void The_value_head_starts_at_zero_and_learns_from_its_loss()
    {
        using var scope = torch.NewDisposeScope();
        using var head = new YingHub.Moe.Rl.Modules.ValueHead(hiddenSize: 4);
        Assert.Equal(["summary.weight", "summary.bias"], head.named_parameters().Select(p => p.name).ToArray());
        var hidden = torch.tensor(new[] { 1f, 0f, 0f, 0f, 0f, 2f, 0f, 0f }, 1, 2, 4);             // (B 1, T 2, C 4)
        var values = head.call(hidden);                                                             // (1, 2)
        Close([0, 0], values);
        // ½ mean (V − R)² with R = [1, 2]: dL/db = mean(V − R) = −1.5; dL/dw = mean((V − R) h) = [−0.5, −2, 0, 0]
        var loss = 0.5 * (values - torch.tensor(new[] { 1f, 2f }, 1, 2)).square().mean();
        loss.backward();
        var grads = head.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!);
        Close([-0.5, -2, 0, 0], grads["summary.weight"]);
        Close([-1.5], grads["summary.bias"]);
    }
}
