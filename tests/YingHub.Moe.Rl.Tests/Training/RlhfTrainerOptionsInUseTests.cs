using YingHub.Moe.Rl.Curriculum;
using YingHub.Moe.Rl.Diagnostics;
using YingHub.Moe.Training.Checkpointing;

namespace YingHub.Moe.Rl.Tests.Training;

/// <summary>Options that change what the trainer does: routing replay in the update, the response-length curriculum and the collapse guard.</summary>
public class RlhfTrainerOptionsInUseTests
{
    /// <summary>One PPO iteration with epochs and a learning rate that move the routers between minibatches.</summary>
    private static IReadOnlyDictionary<string, double> OneIteration(bool replay)
    {
        var (model, tokenizer) = TinyPolicy.Create(seed: 4);
        using var _ = model;
        var options = RlhfTrainerTests.Small();
        options.RoutingReplay = replay;
        options.Epochs = 4;
        options.LearningRate = 3e-2;
        using var trainer = RlhfTrainerTests.Trainer(model, tokenizer, options);
        return trainer.RunIteration();
    }

    [Fact]
    public void With_routing_replay_the_update_uses_the_rollouts_experts_though_the_routers_moved()
    {
        var replayed = OneIteration(replay: true);
        Assert.True(replayed[RlMetricNames.RoutingChange] > 0, "the routers did not move: the test would prove nothing");
        Assert.Equal(0, replayed[RlMetricNames.RoutingChangeUsed]);

        // without replay the experts used are the routers' own choice (eval mode: no noise), so both rates agree
        var fresh = OneIteration(replay: false);
        Assert.True(fresh[RlMetricNames.RoutingChangeUsed] > 0);
        Assert.Equal(fresh[RlMetricNames.RoutingChange], fresh[RlMetricNames.RoutingChangeUsed], 6);
    }

    [Fact]
    public void The_curriculum_sets_each_iterations_response_length_capped_at_ResponseTokens()
    {
        var (model, tokenizer) = TinyPolicy.Create();
        using var _ = model;
        var options = RlhfTrainerTests.Small(iterations: 4);
        options.Curriculum = "linear:2:2";
        using var trainer = RlhfTrainerTests.Trainer(model, tokenizer, options);
        foreach (int expected in new[] { 2, 4, 6, 6 })
        {
            var metrics = trainer.RunIteration();
            Assert.Equal(expected, metrics[RlMetricNames.ResponseLengthLimit]);
            Assert.InRange(metrics[RlMetricNames.ResponseLength], 1, expected);
        }

        trainer.ResponseLength = ResponseLengthSchedules.FromFunction(i => i == 4 ? 3 : 100);
        Assert.Equal(3, trainer.RunIteration()[RlMetricNames.ResponseLengthLimit]);
        Assert.Equal(6, trainer.ResponseLengthAt(5)); // 100 capped at ResponseTokens
        trainer.ResponseLength = ResponseLengthSchedules.FromFunction(_ => 0);
        Assert.ThrowsAny<InvalidOperationException>(() => trainer.ResponseLengthAt(7));
    }

    [Fact]
    public void A_bad_curriculum_is_an_options_error_naming_it()
    {
        var options = RlhfTrainerTests.Small();
        options.Curriculum = "zigzag:3";
        Assert.Contains(options.GetValidationErrors(), e => e.Message.Contains("Curriculum", StringComparison.Ordinal) && e.Message.Contains("zigzag", StringComparison.Ordinal));
    }

    [Fact]
    public void The_collapse_guard_reports_identical_responses_and_stops_the_run_after_its_patience()
    {
        var (model, tokenizer) = TinyPolicy.Create();
        using var _ = model;
        var options = RlhfTrainerTests.Small(iterations: 6);
        options.Temperature = 1e-4; // greedy in effect: one prompt gives one response
        options.CollapseGuard = new CollapseGuardOptions { StopOnCollapse = true, Patience = 2 };
        var prompt = TinyPolicy.Prompts(tokenizer, 1, seed: 2)[0];
        using var trainer = new RlhfTrainer(model, tokenizer, new LetterShare('e'), Enumerable.Repeat(prompt, 8).ToList(), options);
        var seen = new List<IReadOnlyDictionary<string, double>>();
        trainer.Progress += p => seen.Add(p.Metrics);

        var result = trainer.Run();

        Assert.All(seen, m => Assert.Equal(0.75, m[RlMetricNames.CollapseIdenticalShare], 6)); // 4 equal responses: 1 − 1/4
        Assert.All(seen, m => Assert.Equal(1, m[RlMetricNames.CollapseFlagged]));
        Assert.True(result.Collapsed);
        Assert.Equal(2, result.Iterations);
    }

    [Fact]
    public void By_default_the_collapse_guard_only_warns()
    {
        var (model, tokenizer) = TinyPolicy.Create();
        using var _ = model;
        var options = RlhfTrainerTests.Small(iterations: 4);
        options.Temperature = 1e-4;
        var prompt = TinyPolicy.Prompts(tokenizer, 1, seed: 2)[0];
        using var trainer = new RlhfTrainer(model, tokenizer, new LetterShare('e'), Enumerable.Repeat(prompt, 8).ToList(), options);
        var result = trainer.Run();
        Assert.False(result.Collapsed);
        Assert.Equal(4, result.Iterations);
    }

    [Fact]
    public void Cancelling_during_the_rollout_changes_nothing_and_the_run_reports_it()
    {
        var (model, tokenizer) = TinyPolicy.Create();
        using var _ = model;
        var start = Weights.Snapshot(model.named_parameters());
        using var stop = new CancellationTokenSource();
        // the reward runs inside the rollout, after generation: a Ctrl-C arriving there
        var reward = new YingHub.Moe.Rl.Rewards.FunctionReward("cancel", _ =>
        {
            stop.Cancel();
            return 0;
        });
        using var trainer = new RlhfTrainer(model, tokenizer, reward, TinyPolicy.Prompts(tokenizer, 8, seed: 1), RlhfTrainerTests.Small());

        Assert.ThrowsAny<OperationCanceledException>(() => trainer.RunIteration(stop.Token));
        Assert.Equal(0, trainer.Iteration);
        Assert.Empty(Weights.Changed(start, Weights.Snapshot(model.named_parameters())));
        var result = trainer.Run(stop.Token);
        Assert.True(result.Cancelled);
        Assert.Equal(0, result.Iterations);
    }

    [Fact]
    public void A_separate_critic_learns_from_the_value_loss_alone_and_resumes_from_its_checkpoint()
    {
        (Dictionary<string, float[]> Policy, Dictionary<string, float[]> Critic) After(double valueLossCoef, string? directory = null)
        {
            var (model, tokenizer) = TinyPolicy.Create();
            using var _ = model;
            var options = RlhfTrainerTests.Small();
            options.SeparateCritic = true;
            options.ValueLossCoef = valueLossCoef;
            options.GradientClip = null; // a global clip norm would couple the two through the shared scale
            options.CheckpointDirectory = directory;
            using var trainer = RlhfTrainerTests.Trainer(model, tokenizer, options);
            // one iteration: from the second on, the critic's values shape the advantages, and so the policy's update
            trainer.RunIteration();
            if (directory is not null) trainer.Save();
            return (Weights.Snapshot(model.named_parameters()), Weights.Snapshot(trainer.Critic!.named_parameters()));
        }

        var (model0, _) = TinyPolicy.Create();
        var start = Weights.Snapshot(model0.named_parameters());
        model0.Dispose();
        string directory = Directory.CreateTempSubdirectory("yinghub-critic-").FullName;
        try
        {
            var small = After(0.1, directory);
            var large = After(5.0);
            Assert.Empty(Weights.Changed(small.Policy, large.Policy));       // the value loss never reaches the policy
            Assert.NotEmpty(Weights.Changed(small.Critic, large.Critic));    // it is what trains the critic
            Assert.NotEmpty(Weights.Changed(start, small.Critic));
            Assert.NotEmpty(Weights.Changed(start, small.Policy));

            var (model, tokenizer) = TinyPolicy.Create();
            using var _ = model;
            var options = RlhfTrainerTests.Small();
            options.SeparateCritic = true;
            using var resumed = RlhfTrainerTests.Trainer(model, tokenizer, options);
            resumed.Resume(CheckpointStore.FindNewestComplete(directory));
            Assert.Empty(Weights.Changed(small.Critic, Weights.Snapshot(resumed.Critic!.named_parameters())));
            Assert.Empty(Weights.Changed(small.Policy, Weights.Snapshot(model.named_parameters())));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void A_separate_critic_is_refused_for_grpo()
    {
        var options = RlhfTrainerTests.Small(RlAlgorithm.Grpo);
        options.SeparateCritic = true;
        Assert.Contains(options.GetValidationErrors(), e => e.Message.Contains("SeparateCritic", StringComparison.Ordinal));
    }
}
