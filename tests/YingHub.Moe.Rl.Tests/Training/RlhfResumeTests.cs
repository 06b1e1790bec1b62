using YingHub.Moe.Rl.Algorithms;
using YingHub.Moe.Training.Checkpointing;

namespace YingHub.Moe.Rl.Tests.Training;

/// <summary>A run saved and resumed in a new trainer continues bit for bit, with the same metrics and the same held-out reward before training.</summary>
public sealed class RlhfResumeTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("yinghub-rl-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData(RlAlgorithm.Ppo)]
    [InlineData(RlAlgorithm.Grpo)]
    public void A_run_resumed_from_a_checkpoint_continues_exactly_and_keeps_the_reward_before(RlAlgorithm algorithm)
    {
        string dir = Path.Combine(_dir, algorithm.ToString());
        RlhfOptions Options(string? checkpoints)
        {
            var options = RlhfTrainerTests.Small(algorithm, iterations: 4);
            options.EvaluationPrompts = 4;
            options.CheckpointDirectory = checkpoints;
            options.KlTarget = 0.5;                                  // β changes every iteration: it must come back too
            options.KlHorizon = 16;
            options.MiniBatchSize = algorithm == RlAlgorithm.Grpo ? 4 : 2;  // two shuffled minibatches per epoch either way
            return options;
        }

        // the straight run: 4 iterations
        var straightMetrics = new List<RlhfProgress>();
        RlhfResult straight;
        Dictionary<string, float[]> straightPolicy, straightHead;
        var (model, tokenizer) = TinyPolicy.Create();
        var heldOut = TinyPolicy.Prompts(tokenizer, 4, seed: 2);
        using (model)
        using (var trainer = RlhfTrainerTests.Trainer(model, tokenizer, Options(null), heldOut))
        {
            trainer.Progress += straightMetrics.Add;
            straight = trainer.Run();
            straightPolicy = Weights.Snapshot(model.named_parameters());
            straightHead = trainer.ValueHead is { } head ? Weights.Snapshot(head.named_parameters()) : [];
        }

        // 2 iterations, saved (on cancellation), then a new process's trainer from the same start resumes
        (model, tokenizer) = TinyPolicy.Create();
        using (model)
        using (var trainer = RlhfTrainerTests.Trainer(model, tokenizer, Options(dir), heldOut))
        using (var cancel = new CancellationTokenSource())
        {
            trainer.Progress += p => { if (p.Iteration == 2) cancel.Cancel(); };
            var first = trainer.Run(cancel.Token);
            Assert.True(first.Cancelled);
            Assert.Equal(2, first.Iterations);
            Assert.Equal(straight.RewardBefore, first.RewardBefore);
            Assert.Contains("rl.reward_before", CheckpointStore.ReadState(dir).Extra!.Keys);
        }

        var resumedMetrics = new List<RlhfProgress>();
        (model, tokenizer) = TinyPolicy.Create();
        var reward = new LetterShare('e');
        using (model)
        using (var trainer = RlhfTrainerTests.Trainer(model, tokenizer, Options(null), heldOut, reward))
        {
            trainer.Resume(dir);
            Assert.Equal(2, trainer.Iteration);
            Assert.Equal(straightMetrics[1].Metrics[RlMetricNames.Beta], trainer.Beta);
            trainer.Progress += resumedMetrics.Add;
            var resumed = trainer.Run();
            // two rollouts and the held-out prompts once, after: the resumed policy is not scored as the one "before"
            Assert.Equal(2 * Options(null).RolloutSequences + heldOut.Count, reward.Scored);
            // the held-out reward before training is the starting policy's, restored from the checkpoint, not the resumed policy's
            Assert.Equal(straight, resumed);
            Assert.Empty(Weights.Changed(straightPolicy, Weights.Snapshot(model.named_parameters())));
            if (trainer.ValueHead is { } head) Assert.Empty(Weights.Changed(straightHead, Weights.Snapshot(head.named_parameters())));
        }

        Assert.Equal([3L, 4], resumedMetrics.Select(p => p.Iteration));
        foreach (var (expected, actual) in straightMetrics.Skip(2).Zip(resumedMetrics))
        {
            var deterministic = expected.Metrics.Keys.Where(k => !k.StartsWith("time/", StringComparison.Ordinal) && k != RlMetricNames.TokensPerSecond).Order(StringComparer.Ordinal).ToList();
            Assert.Equal(deterministic, actual.Metrics.Keys.Where(deterministic.Contains).Order(StringComparer.Ordinal));
            Assert.Equal(expected.Metrics.Count, actual.Metrics.Count);
            foreach (string key in deterministic) Assert.True(expected.Metrics[key].Equals(actual.Metrics[key]), $"iteration {actual.Iteration}, {key}: {expected.Metrics[key]} straight, {actual.Metrics[key]} resumed");
        }
    }
}
