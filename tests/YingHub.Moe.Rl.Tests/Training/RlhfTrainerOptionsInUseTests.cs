using YingHub.Moe.Rl.Curriculum;
using YingHub.Moe.Rl.Diagnostics;

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
}
