using YingHub.Moe.Core.Checkpoints;
using YingHub.Moe.Training.Checkpointing;

namespace YingHub.Moe.Cli.Tests;

/// <summary>Nothing is lost when a run dies: kill -9 at random moments (inside saves too), and SIGTERM.</summary>
public sealed class TrainKillTests : IDisposable
{
    private readonly TrainProcess _cli = new();

    public void Dispose() => _cli.Dispose();

    [UnixFact]
    public void Killed_at_random_moments_even_inside_saves_every_run_directory_still_loads_and_resumes()
    {
        string output = Path.Combine(_cli.Directory, "run");
        var random = new Random(20);
        long lastStep = 0;
        int resumed = 0;
        for (int kill = 0; kill < 8; kill++)
        {
            bool any = HasComplete(output);
            // a checkpoint every step: most of a step is spent saving, so most kills land inside a save
            string[] args = TrainProcess.Train(output, ["--steps", "1000", "--save-every", "1", "--json", .. any ? new[] { "--resume" } : []]);
            using (var run = _cli.Start(args))
            {
                // the kill comes at a random moment after this run has saved at least once: a fixed delay from the start
                // would depend on how fast this machine starts a process (a loaded one can take longer than the delay)
                while (!run.Process.HasExited && NewestCompleteStep(output) <= lastStep) Thread.Sleep(10);
                Thread.Sleep(random.Next(0, 1500));
                Assert.False(run.Process.HasExited, $"the run ended by itself: {run.Error}");
                run.KillHard();
            }

            resumed += any ? 1 : 0;
            string newest = CheckpointStore.FindNewestComplete(output);
            long step = CheckpointStore.ReadState(newest).Step;
            Assert.True(step >= lastStep, $"kill {kill}: the newest complete checkpoint is at step {step}, an earlier one was at {lastStep}");
            lastStep = step;
            var (model, _) = CheckpointLoader.Load(output); // what generate and eval do, even when the kill left no checkpoint in 'run' itself
            model.Dispose();
        }

        Assert.True(lastStep > 0 && resumed > 0, $"no checkpoint was completed ({lastStep}) or resumed ({resumed}): the kills came too early");
        var (exit, stdout, stderr) = _cli.Run(TrainProcess.Train(output, "--steps", (lastStep + 1).ToString(System.Globalization.CultureInfo.InvariantCulture), "--resume", "--json"));
        Assert.True(exit == 0, stderr);
        Assert.Contains($"resumed at step {lastStep}", stdout);
        Assert.Equal(lastStep + 1, CheckpointStore.ReadState(output).Step);
        Assert.Empty(Directory.GetDirectories(_cli.Directory, ".run.*")); // the complete save cleared what the kills left
        using var final = MoeCheckpoint.Load(output);
    }

    [UnixFact]
    public void Sigterm_finishes_the_step_saves_says_so_and_exits_non_zero()
    {
        string output = Path.Combine(_cli.Directory, "run");
        string state = Path.Combine(output, CheckpointStore.StateFile);
        using var run = _cli.Start(TrainProcess.Train(output, "--steps", "1000", "--save-every", "5"));
        while (!File.Exists(state) && !run.Process.HasExited) Thread.Sleep(50); // training is under way once the first periodic checkpoint is there
        Assert.False(run.Process.HasExited, run.Error.ToString());
        run.Terminate();
        run.Process.WaitForExit();

        Assert.Equal(143, run.Process.ExitCode);
        string error = run.Error.ToString();
        long step = CheckpointStore.ReadState(output).Step;
        Assert.Contains($"SIGTERM: stopped at step {step}; checkpoint saved to {output} (continue with --resume).", error);
        Assert.True(step >= 5, $"step {step}: the signal came after the checkpoint of step 5");
        Assert.Equal(output, CheckpointStore.FindNewestComplete(output));
    }

    /// <summary>The step of the newest complete checkpoint, 0 when there is none yet (or it was replaced while being read).</summary>
    private static long NewestCompleteStep(string output)
    {
        try
        {
            return CheckpointStore.ReadState(CheckpointStore.FindNewestComplete(output)).Step;
        }
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            return 0;
        }
    }

    private static bool HasComplete(string output)
    {
        try
        {
            CheckpointStore.FindNewestComplete(output);
            return true;
        }
        catch (InvalidDataException)
        {
            return false;
        }
    }
}
