using TorchSharp;
using YingHub.Moe.Rl.Algorithms;
using Xunit.Abstractions;

namespace YingHub.Moe.Rl.Tests.Training;

public class RlhfEndToEndTests(ITestOutputHelper output)
{
    private const double KlTarget = 3;

    [Theory]
    [InlineData(RlAlgorithm.Ppo, 0.05)]
    [InlineData(RlAlgorithm.Grpo, 0.3)] // GRPO's β weighs a per-token mean in the loss, against advantages of unit scale
    public void The_reward_rises_while_the_kl_stays_bounded(RlAlgorithm algorithm, double beta)
    {
        var (model, tokenizer) = TinyPolicy.Create();
        using var _ = model;
        var options = new RlhfOptions
        {
            Algorithm = algorithm, Iterations = 20, PromptsPerIteration = algorithm == RlAlgorithm.Grpo ? 4 : 16, GroupSize = algorithm == RlAlgorithm.Grpo ? 4 : 1,
            ResponseTokens = 12, MiniBatchSize = 8, Epochs = 2, LearningRate = 3e-3, ValueLearningRate = 1e-2, EvaluationPrompts = 32, Seed = 7,
            // Ziegler's controller with a short horizon, so that it acts within the test's few iterations
            KlCoef = beta, KlTarget = KlTarget, KlHorizon = 64,
        };
        using var trainer = new RlhfTrainer(model, tokenizer, new LetterShare('e'), TinyPolicy.Prompts(tokenizer, 64, 1), options, TinyPolicy.Prompts(tokenizer, 32, 2));
        trainer.Progress += p => output.WriteLine($"{p.Iteration}: reward {p.Metrics[RlMetricNames.RewardMean]:F3} kl {p.Metrics[RlMetricNames.Kl]:F3} approxkl {p.Metrics[RlMetricNames.ApproxKl]:F4} clip {p.Metrics[RlMetricNames.ClipFraction]:F3} ent {p.Metrics[RlMetricNames.Entropy]:F3} change {p.Metrics[RlMetricNames.RoutingChange]:F3}");
        var result = trainer.Run();
        output.WriteLine($"before {result.RewardBefore} after {result.RewardAfter} kl {result.Kl}");
        // untrained, the letter is about 1 character in 10; the held-out responses' mean must rise by more than 3 standard
        // errors of the difference (the benchmark's criterion; across seeds 7-10 the rise is 4-12 of them, with and without routing replay)
        var (before, after) = (result.RewardBefore!, result.RewardAfter!);
        double standardError = Math.Sqrt(before.StandardError * before.StandardError + after.StandardError * after.StandardError);
        Assert.True(after.Mean - before.Mean > 3 * standardError, $"reward {before.Mean:F3} → {after.Mean:F3} (standard error of the difference {standardError:F3})");
        Assert.InRange(result.Kl, 0, 3 * KlTarget);
    }
}
