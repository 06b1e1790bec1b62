using TorchSharp;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Rl.Algorithms;
using YingHub.Moe.Rl.Modules;
using YingHub.Moe.Training.Freezing;

namespace YingHub.Moe.Rl.Tests.Training;

/// <summary>
/// What the trainer must hold through its updates: the reference and frozen parameters stay bit-identical, the value
/// head learns from the value loss alone, and the KL controller moves β the right way.
/// </summary>
public class RlhfTrainerTests
{
    /// <summary>A few small iterations with a learning rate large enough that one update visibly moves every trained weight.</summary>
    internal static RlhfOptions Small(RlAlgorithm algorithm = RlAlgorithm.Ppo, long iterations = 2) => new()
    {
        Algorithm = algorithm, Iterations = iterations, PromptsPerIteration = 4, GroupSize = algorithm == RlAlgorithm.Grpo ? 2 : 1,
        ResponseTokens = 6, MiniBatchSize = 2, Epochs = 2, LearningRate = 1e-2, ValueLearningRate = 1e-2, EvaluationPrompts = 0, Seed = 3,
    };

    internal static RlhfTrainer Trainer(MoeForCausalLM model, CharTokenizer tokenizer, RlhfOptions options, IReadOnlyList<IReadOnlyList<long>>? heldOut = null,
        LetterShare? reward = null) =>
        new(model, tokenizer, reward ?? new LetterShare('e'), TinyPolicy.Prompts(tokenizer, 8, seed: 1), options, heldOut);

    private static void RunIterations(RlhfTrainer trainer, int count)
    {
        for (int i = 0; i < count; i++) trainer.RunIteration();
    }

    [Theory]
    [InlineData(RlAlgorithm.Ppo)]
    [InlineData(RlAlgorithm.Grpo)]
    public void The_reference_is_bit_identical_after_updates_while_the_policy_changes(RlAlgorithm algorithm)
    {
        var (model, tokenizer) = TinyPolicy.Create();
        using var _ = model;
        var start = Weights.Snapshot(model.named_parameters());
        using var trainer = Trainer(model, tokenizer, Small(algorithm));
        Assert.Empty(Weights.Changed(start, Weights.Snapshot(trainer.Reference.Model.named_parameters())));
        RunIterations(trainer, 2);

        Assert.Empty(Weights.Changed(start, Weights.Snapshot(trainer.Reference.Model.named_parameters())));
        Assert.All(trainer.Reference.Model.parameters(), p => Assert.False(p.requires_grad));
        Assert.False(trainer.Reference.Model.training);
        Assert.NotEmpty(Weights.Changed(start, Weights.Snapshot(model.named_parameters())));
    }

    [Fact]
    public void Frozen_parameters_are_bit_identical_after_updates_and_the_others_change()
    {
        var (model, tokenizer) = TinyPolicy.Create();
        using var _ = model;
        var start = Weights.Snapshot(model.named_parameters());
        var options = Small();
        options.Freeze = ["embeddings", "blocks:1"]; // the embeddings (and the tied head) and the first of the two layers
        options.WeightDecay = 0.1; // decay must not reach frozen weights either
        using var trainer = Trainer(model, tokenizer, options);
        RunIterations(trainer, 2);

        var frozen = ParameterFreezing.FrozenNames(model).ToHashSet(StringComparer.Ordinal);
        Assert.Contains("embed_tokens.weight", frozen);
        Assert.Contains(frozen, n => n.StartsWith("layers.0.", StringComparison.Ordinal));
        Assert.DoesNotContain(frozen, n => n.StartsWith("layers.1.", StringComparison.Ordinal));
        var changed = Weights.Changed(start, Weights.Snapshot(model.named_parameters())).ToHashSet(StringComparer.Ordinal);
        Assert.Empty(changed.Intersect(frozen));
        // every other parameter moved, but the router's noise projection: the policy runs in evaluation mode, without noise
        var expected = start.Keys.Where(n => !frozen.Contains(n) && !n.Contains("noise", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(expected);
        Assert.All(expected, n => Assert.Contains(n, changed));
    }

    [Fact]
    public void With_value_loss_coef_0_the_value_head_stays_zero_while_the_policy_changes()
    {
        var (model, tokenizer) = TinyPolicy.Create();
        using var _ = model;
        var start = Weights.Snapshot(model.named_parameters());
        var options = Small();
        options.ValueLossCoef = 0;
        options.WeightDecay = 0.1;
        using var trainer = Trainer(model, tokenizer, options);
        RunIterations(trainer, 2);

        foreach (var (name, values) in Weights.Snapshot(trainer.ValueHead!.named_parameters()))
            Assert.True(values.All(v => BitConverter.SingleToInt32Bits(v) == 0), $"{name} left +0: [{string.Join(", ", values)}]");
        Assert.NotEmpty(Weights.Changed(start, Weights.Snapshot(model.named_parameters())));
    }

    [Fact]
    public void The_value_loss_trains_the_value_head_and_reaches_the_policy_only_through_the_shared_trunk()
    {
        // One iteration (its rollout and advantages are the same in every run: the value head starts at zero), no
        // clipping (the global norm would mix the head's gradient into the policy's step).
        (Dictionary<string, float[]> Policy, Dictionary<string, float[]> Head) Train(double valueLossCoef, bool trainsPolicy)
        {
            var (model, tokenizer) = TinyPolicy.Create();
            using var _ = model;
            var options = Small(iterations: 1);
            options.GradientClip = null;
            options.ValueLossCoef = valueLossCoef;
            options.ValueLossTrainsPolicy = trainsPolicy;
            using var trainer = Trainer(model, tokenizer, options);
            trainer.RunIteration();
            return (Weights.Snapshot(model.named_parameters()), Weights.Snapshot(trainer.ValueHead!.named_parameters()));
        }

        var policyOnly = Train(0, trainsPolicy: false);
        var separate = Train(0.5, trainsPolicy: false);
        var shared = Train(0.5, trainsPolicy: true);
        Assert.Empty(Weights.Changed(policyOnly.Policy, separate.Policy));            // a detached critic: the policy's step is the policy loss's alone
        Assert.NotEmpty(Weights.Changed(policyOnly.Head, separate.Head));             // while the head learns
        Assert.NotEmpty(Weights.Changed(policyOnly.Policy, shared.Policy));           // the shared trunk gets the value loss too
    }

    [Fact]
    public void The_kl_starts_at_0_and_the_controller_lowers_beta_below_the_target_and_raises_it_above()
    {
        const double beta = 0.1, horizon = 16;
        List<IReadOnlyDictionary<string, double>> Run(double? target)
        {
            var (model, tokenizer) = TinyPolicy.Create();
            using var _ = model;
            var options = Small(iterations: 2);
            options.KlCoef = beta;
            options.KlTarget = target;
            options.KlHorizon = horizon;
            options.KlEstimator = KlEstimator.K3; // never negative, so a moved policy is above a tiny target
            using var trainer = Trainer(model, tokenizer, options);
            var metrics = Enumerable.Range(0, 2).Select(_ => trainer.RunIteration()).ToList();
            Assert.Equal(metrics[^1][RlMetricNames.Beta], trainer.Beta);
            return metrics;
        }

        // Ziegler et al.: β ← β · (1 + clip(KL / target − 1, −0.2, 0.2) · n / horizon), with n = 4 sequences per iteration
        static double Next(double b, double kl, double target) => b * (1 + Math.Clamp(kl / target - 1, -0.2, 0.2) * 4 / horizon);

        var high = Run(target: 1e3);
        Assert.Equal(0, high[0][RlMetricNames.Kl]);                                    // the policy is the reference at the first rollout
        Assert.InRange(high[1][RlMetricNames.Kl], double.Epsilon, 0.8e3);
        // far below the target: the largest step down, twice
        Assert.Equal(beta * (1 - 0.2 * 4 / horizon), high[0][RlMetricNames.Beta], 12);
        Assert.Equal(high[0][RlMetricNames.Beta] * (1 - 0.2 * 4 / horizon), high[1][RlMetricNames.Beta], 12);

        var low = Run(target: 1e-6);
        double expected = beta;
        for (int i = 0; i < low.Count; i++)
        {
            expected = Next(expected, low[i][RlMetricNames.Kl], 1e-6);
            Assert.Equal(expected, low[i][RlMetricNames.Beta], 12);
        }

        Assert.True(low[0][RlMetricNames.Beta] < beta, "a KL of 0 is below any target");
        Assert.True(low[1][RlMetricNames.Beta] > low[0][RlMetricNames.Beta], "KL above the target raises β");

        Assert.All(Run(target: null), m => Assert.Equal(beta, m[RlMetricNames.Beta]));
    }
}
