using TorchSharp;
using YingHub.Moe.Core.Checkpoints;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Training.Checkpointing;
using YingHub.Moe.Training.Optimization;
using YingHub.Moe.Training.Schedules;

namespace YingHub.Moe.Training.Tests.Checkpointing;

/// <summary>Where a crash can leave checkpoints, and which one a resume takes.</summary>
public sealed class CheckpointStoreTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("yinghub-store-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static MoeForCausalLM Model()
    {
        torch.manual_seed(1);
        return new MoeForCausalLM(new MoeModelOptions
        {
            VocabSize = 11, ContextLength = 8, HiddenSize = 16, NumHeads = 2, NumLayers = 1, NumExperts = 2, TopK = 2, ExpertMultiplier = 2,
        });
    }

    private static OptimizerStep Optimizer(MoeForCausalLM model) =>
        new(model, new OptimizerStepOptions { Schedule = new ConstantSchedule(1e-3) });

    [Fact]
    public void The_newest_complete_checkpoint_is_found_in_the_directory_its_history_or_where_a_killed_swap_set_it_aside()
    {
        using var model = Model();
        using var optimizer = Optimizer(model);
        string run = Path.Combine(_dir, "run");
        var store = new CheckpointStore(run, keep: 3);
        foreach (long step in new long[] { 1, 2, 3 }) store.Save(model, optimizer, new TrainingState { Step = step, Extra = new() { ["mine"] = $"{step}" } });
        Assert.Equal(["step-00000001", "step-00000002"], Directory.GetDirectories(run + ".history").Select(Path.GetFileName).Order());
        Assert.Equal(run, CheckpointStore.FindNewestComplete(run));
        Assert.Equal("3", CheckpointStore.ReadState(run).Extra!["mine"]);

        // a truncated file in the newest: the one before it, from the history
        string weights = Path.Combine(run, MoeCheckpoint.WeightsFile);
        File.WriteAllBytes(weights, File.ReadAllBytes(weights)[..100]);
        Assert.Equal(Path.Combine(run + ".history", "step-00000002"), CheckpointStore.FindNewestComplete(run));

        // killed between setting the previous checkpoint aside and moving the new one in: only the aside copy is complete
        Directory.Delete(run, recursive: true);
        string aside = Path.Combine(_dir, $".run.{Guid.NewGuid():N}.old");
        Directory.Move(Path.Combine(run + ".history", "step-00000002"), aside);
        Directory.Delete(run + ".history", recursive: true);
        string staging = Path.Combine(_dir, $".run.{Guid.NewGuid():N}.tmp");
        Directory.CreateDirectory(staging);
        File.WriteAllText(Path.Combine(staging, MoeCheckpoint.ConfigFile), "{"); // a save cut short
        Assert.Equal(aside, CheckpointStore.FindNewestComplete(run));

        // the next complete save clears what the kill left
        store.Save(model, optimizer, new TrainingState { Step = 3 });
        Assert.Equal(run, CheckpointStore.FindNewestComplete(run));
        Assert.Empty(Directory.GetDirectories(_dir, ".run.*"));

        Directory.Delete(run, recursive: true);
        var ex = Assert.Throws<InvalidDataException>(() => CheckpointStore.FindNewestComplete(run));
        Assert.Contains("no checkpoint of a run", ex.Message);
    }

    [Fact]
    public void A_checkpoint_saved_before_an_infinite_best_loss_exists_still_round_trips()
    {
        // early stopping's state before its first evaluation holds +infinity, which plain JSON cannot write
        using var model = Model();
        using var optimizer = Optimizer(model);
        string run = Path.Combine(_dir, "run");
        new CheckpointStore(run).Save(model, optimizer, new TrainingState { Step = 1, EarlyStopping = new EarlyStoppingState(null, double.PositiveInfinity, 0, null) });
        Assert.Equal(double.PositiveInfinity, CheckpointStore.ReadState(run).EarlyStopping!.BestLoss);
        Assert.Equal(1, CheckpointStore.Load(run, model, optimizer).Step);
    }
}
