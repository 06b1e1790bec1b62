using System.Text.Json;
using YingHub.Moe.Training.Checkpointing;

namespace YingHub.Moe.Cli.Tests;

/// <summary><c>yinghub rlhf</c> through the real CLI: a short PPO and GRPO run on a tiny checkpoint, its JSON line, resume, ftgenerate and errors.</summary>
public sealed class RlhfCommandTests : IDisposable
{
    private readonly TrainProcess _cli = new();

    public RlhfCommandTests()
    {
        // prompts are lines (with their newline), so the base model's corpus has lines too
        var words = File.ReadAllText(_cli.Corpus).Split(' ');
        File.WriteAllLines(Path.Combine(_cli.Directory, "lines.txt"), words.Chunk(7).Select(line => string.Join(' ', line)));
        var (exit, _, stderr) = _cli.Run("train", "--data", "lines.txt", "--preset", "tiny", "--block", "32", "--batch", "2", "--steps", "2", "--seed", "3", "--out", Base);
        Assert.True(exit == 0, stderr);
        // twelve prompts: every fifth line is held out, the rest train
        File.WriteAllLines(Path.Combine(_cli.Directory, "prompts.txt"),
            ["the king", "a song", "the sea", "and sang", "a far land", "the queen", "went to", "see the", "of a", "sang a", "the land", "a king"]);
    }

    private string Base => Path.Combine(_cli.Directory, "base");

    public void Dispose() => _cli.Dispose();

    private string[] Rlhf(string output, params string[] more) =>
        ["rlhf", "--checkpoint", Base, .. more.Contains("--reward") ? Array.Empty<string>() : ["--reward", "letter_share:e"], "--prompts", "prompts.txt",
            "--batch", "2", "--response-tokens", "6", "--eval-prompts", "2", "--out", output, .. more];

    private static JsonElement LastJsonLine(string stdout)
    {
        using var document = JsonDocument.Parse(stdout.TrimEnd().Split('\n')[^1]);
        return document.RootElement.Clone();
    }

    [Fact]
    public void A_ppo_run_ends_with_its_json_line_resumes_and_ftgenerate_samples_its_checkpoint()
    {
        string output = Path.Combine(_cli.Directory, "rl");
        var (exit, stdout, stderr) = _cli.Run(Rlhf(output, "--iterations", "2", "--json"));
        Assert.True(exit == 0, stderr + stdout);
        var result = LastJsonLine(stdout);
        Assert.Equal(2, result.GetProperty("iterations").GetInt64());
        foreach (string key in new[] { "reward_before", "reward_after", "kl", "beta" })
            Assert.True(double.IsFinite(result.GetProperty(key).GetDouble()), key);
        Assert.InRange(result.GetProperty("reward_before").GetDouble(), 0, 1); // a letter share
        Assert.False(result.GetProperty("collapsed").GetBoolean());
        Assert.Equal(Path.GetFullPath(output), Path.GetFullPath(result.GetProperty("checkpoint").GetString()!));
        Assert.Equal(2, CheckpointStore.ReadState(output).Step);
        Assert.True(File.Exists(Path.Combine(CheckpointStore.FindNewestComplete(output), "value_head.safetensors")));
        Assert.True(File.Exists(Path.Combine(output + ".cache", "metrics.jsonl")));
        Assert.True(File.Exists(Path.Combine(output + ".cache", "plots", "reward.png")));

        (exit, stdout, stderr) = _cli.Run(Rlhf(output, "--iterations", "3", "--json", "--resume"));
        Assert.True(exit == 0, stderr + stdout);
        Assert.Contains("resumed at iteration 2", stdout);
        var resumed = LastJsonLine(stdout);
        Assert.Equal(3, resumed.GetProperty("iterations").GetInt64());
        // the held-out reward before training belongs to the run: a resume reports the first run's
        Assert.Equal(result.GetProperty("reward_before").GetDouble(), resumed.GetProperty("reward_before").GetDouble());

        (exit, stdout, stderr) = _cli.Run("ftgenerate", "--checkpoint", output, "--prompt", "the ", "--tokens", "5");
        Assert.True(exit == 0, stderr);
        Assert.StartsWith("the ", stdout.TrimStart());
    }

    [Fact]
    public void A_grpo_run_with_a_config_file_curriculum_and_replay_off_finishes()
    {
        File.WriteAllText(Path.Combine(_cli.Directory, "rl.json"), """{ "epochs": 2, "mini_batch_size": 4, "entropy_coef": 0.01 }""");
        string output = Path.Combine(_cli.Directory, "grpo");
        var (exit, stdout, stderr) = _cli.Run(Rlhf(output, "--algorithm", "grpo", "--group", "2", "--iterations", "2", "--config", "rl.json",
            "--curriculum", "linear:3:2", "--replay", "off", "--json"));
        Assert.True(exit == 0, stderr + stdout);
        Assert.Equal(2, LastJsonLine(stdout).GetProperty("iterations").GetInt64());
        Assert.False(File.Exists(Path.Combine(CheckpointStore.FindNewestComplete(output), "value_head.safetensors"))); // no critic
        string[] metrics = File.ReadAllLines(Path.Combine(output + ".cache", "metrics.jsonl"));
        var lengths = metrics.Select(l => JsonDocument.Parse(l).RootElement)
            .Where(e => e.TryGetProperty("tokens/response_len_mean", out _)).Select(e => e.GetProperty("tokens/response_len_mean").GetDouble()).ToList();
        Assert.Equal(2, lengths.Count);
        Assert.All(lengths.Zip([3.0, 5.0]), p => Assert.InRange(p.First, 1, p.Second)); // the curriculum's caps: 3, then 5
    }

    [Fact]
    public void Best_of_n_scores_the_held_out_prompts_at_its_analytical_kl()
    {
        var (exit, stdout, stderr) = _cli.Run("best-of-n", "--checkpoint", Base, "--n", "3", "--reward", "letter_share:e", "--prompts", "prompts.txt",
            "--response-tokens", "5", "--eval-prompts", "2", "--json");
        Assert.True(exit == 0, stderr + stdout);
        var result = LastJsonLine(stdout);
        Assert.Equal(3, result.GetProperty("n").GetInt32());
        Assert.Equal(2, result.GetProperty("prompts").GetInt32()); // twelve lines: two held out (every fifth)
        Assert.Equal(Math.Log(3) - 2.0 / 3, result.GetProperty("kl").GetDouble(), 12);
        Assert.True(result.GetProperty("reward_best").GetDouble() >= result.GetProperty("reward_mean").GetDouble());
    }

    [Theory]
    [InlineData("--reward", "nonsense", "--reward", "letter_share")]
    [InlineData("--algorithm", "grpo", "GroupSize", "1")]
    [InlineData("--config", "bad.json", "bad.json", "no_such_key")]
    [InlineData("--curriculum", "zigzag:3", "Curriculum", "zigzag")]
    public void Bad_settings_get_one_line_naming_the_value(string flag, string value, string fragment1, string fragment2)
    {
        File.WriteAllText(Path.Combine(_cli.Directory, "bad.json"), """{ "no_such_key": 1 }""");
        string[] args = Rlhf(Path.Combine(_cli.Directory, "x"), [flag, value, "--iterations", "1", .. flag == "--algorithm" ? ["--group", "1"] : Array.Empty<string>()]);
        var (exit, stdout, stderr) = _cli.Run(args);
        Assert.True(exit == 2, $"exit {exit}: {stdout} {stderr}");
        string line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.DoesNotContain("   at ", stderr);
        Assert.Contains(fragment1, line);
        Assert.Contains(fragment2, line);
    }
}
