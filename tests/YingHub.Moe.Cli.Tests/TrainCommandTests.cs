using System.Text.Json;
using TorchSharp;
using YingHub.Moe.Building;
using YingHub.Moe.Core.Checkpoints;
using YingHub.Moe.Training.Checkpointing;

namespace YingHub.Moe.Cli.Tests;

/// <summary><c>yinghub train</c> through the real CLI: a finished run resumed with --json, and --freeze.</summary>
public sealed class TrainCommandTests : IDisposable
{
    private readonly TrainProcess _cli = new();

    public void Dispose() => _cli.Dispose();

    [Fact]
    public void Resuming_a_finished_run_with_json_says_it_is_complete_and_prints_its_json_line()
    {
        string output = Path.Combine(_cli.Directory, "run");
        var (exit, stdout, stderr) = _cli.Run(TrainProcess.Train(output, "--steps", "3", "--json"));
        Assert.True(exit == 0, stderr);
        using var first = JsonDocument.Parse(stdout.TrimEnd().Split('\n')[^1]);

        (exit, stdout, stderr) = _cli.Run(TrainProcess.Train(output, "--steps", "3", "--json", "--resume"));
        Assert.True(exit == 0, stderr);
        Assert.Contains($"the run in {output} is already complete at step 3 of 3", stdout);
        using var again = JsonDocument.Parse(stdout.TrimEnd().Split('\n')[^1]);
        Assert.Equal(3, again.RootElement.GetProperty("steps").GetInt64());
        Assert.Equal(first.RootElement.GetProperty("train_loss").GetDouble(), again.RootElement.GetProperty("train_loss").GetDouble());
        Assert.Equal(first.RootElement.GetProperty("val_loss").GetDouble(), again.RootElement.GetProperty("val_loss").GetDouble());
    }

    [Fact]
    public void Freeze_keeps_the_named_parts_bit_identical_records_them_and_resume_reapplies_them()
    {
        string output = Path.Combine(_cli.Directory, "run");
        var (exit, _, stderr) = _cli.Run(TrainProcess.Train(output, "--steps", "3", "--seed", "5", "--freeze", "embeddings", "--freeze", "layers.0.*"));
        Assert.True(exit == 0, stderr);
        var frozen = CheckpointStore.ReadState(output).Frozen!;
        Assert.Contains("embed_tokens.weight", frozen);
        Assert.Contains("embed_positions.weight", frozen);
        Assert.Contains("layers.0.self_attn.qkv_proj.weight", frozen);
        Assert.DoesNotContain(frozen, n => n.StartsWith("layers.1.", StringComparison.Ordinal));

        // the same start, built independently with the builder (the corpus's characters, blocks of 16, the run's seed)
        torch.manual_seed(5);
        int vocabulary = File.ReadAllText(_cli.Corpus).Distinct().Count();
        using var start = MoeModelBuilder.FromPreset("tiny").Vocabulary(vocabulary).Context(16).Freeze("embeddings", "layers.0.*").Build();
        Assert.Equal(frozen, start.named_parameters().Where(p => !p.parameter.requires_grad).Select(p => p.name));

        // a resume without --freeze freezes the same (a different set would be refused); frozen weights never move
        (exit, _, stderr) = _cli.Run(TrainProcess.Train(output, "--steps", "5", "--seed", "5", "--resume"));
        Assert.True(exit == 0, stderr);
        Assert.Equal(frozen, CheckpointStore.ReadState(output).Frozen);
        using var trained = MoeCheckpoint.Load(output);
        var startWeights = start.state_dict();
        foreach (var (name, value) in trained.state_dict().Where(kv => kv.Value.is_floating_point()))
        {
            bool same = value.equal(startWeights[name]).all().item<bool>();
            Assert.True(frozen.Contains(name) == same, $"{name}: frozen {frozen.Contains(name)}, unchanged {same}");
        }

        (exit, _, stderr) = _cli.Run(TrainProcess.Train(output, "--steps", "6", "--seed", "5", "--resume", "--freeze", "routers"));
        Assert.Equal(1, exit);
        Assert.Contains("this model freezes [", stderr);
    }

    [Fact]
    public void Generate_refuses_a_checkpoint_whose_weights_were_corrupted_on_disk_naming_the_file()
    {
        string output = Path.Combine(_cli.Directory, "run");
        var (exit, _, stderr) = _cli.Run(TrainProcess.Train(output, "--steps", "2"));
        Assert.True(exit == 0, stderr);
        (exit, _, stderr) = _cli.Run("generate", "--checkpoint", output, "--prompt", "the", "--tokens", "5", "--seed", "1");
        Assert.True(exit == 0, stderr);

        string weights = Path.Combine(output, MoeCheckpoint.WeightsFile);
        byte[] bytes = File.ReadAllBytes(weights);
        for (int i = 0; i < 64; i++) bytes[bytes.Length / 2 + i] ^= 0xff;
        File.WriteAllBytes(weights, bytes);
        (exit, _, stderr) = _cli.Run("generate", "--checkpoint", output, "--prompt", "the", "--tokens", "5", "--seed", "1");
        Assert.Equal(1, exit);
        Assert.Contains("'model.safetensors' does not match its recorded SHA-256", stderr);
    }
}
