using System.Text.Json.Nodes;

namespace YingHub.Moe.Cli.Tests;

/// <summary><c>yinghub train --config</c> and <c>--print-config</c> through the real CLI: a run repeats from its saved configuration.</summary>
public sealed class TrainRecipeCommandTests : IDisposable
{
    private readonly TrainProcess _cli = new();

    public void Dispose() => _cli.Dispose();

    [Fact]
    public void Print_config_writes_a_file_that_gives_the_same_configuration_and_the_checkpoint_keeps_it()
    {
        string output = Path.Combine(_cli.Directory, "run");
        var (exit, printed, stderr) = _cli.Run(TrainProcess.Train(output, "--steps", "4", "--print-config"));
        Assert.True(exit == 0, stderr);
        var config = JsonNode.Parse(printed)!.AsObject();
        Assert.Equal(18, (int)config["model"]!["vocab_size"]!); // the corpus's characters, resolved before printing
        Assert.Equal(16, (int)config["model"]!["max_position_embeddings"]!); // from --block
        Assert.Equal("tiny", (string)config["model"]!["preset"]!);
        Assert.Equal(4, (int)config["trainer"]!["steps"]!);
        Assert.False(Directory.Exists(output)); // printing trains nothing

        string file = Path.Combine(_cli.Directory, "printed.json");
        File.WriteAllText(file, printed);
        (exit, string again, stderr) = _cli.Run("train", "--config", "printed.json", "--print-config");
        Assert.True(exit == 0, stderr);
        Assert.Equal(printed, again);

        (exit, _, stderr) = _cli.Run("train", "--config", "printed.json", "--steps", "3");
        Assert.True(exit == 0, stderr);
        var saved = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "training_config.json")))!.AsObject();
        config["trainer"]!["steps"] = 3;
        Assert.True(JsonNode.DeepEquals(config, saved), saved.ToJsonString());
    }

    [Fact]
    public void Resume_without_flags_continues_with_the_runs_own_configuration()
    {
        string output = Path.Combine(_cli.Directory, "run");
        File.WriteAllText(Path.Combine(_cli.Directory, "run.json"), """
            { "data": "text.txt", "block_size": 16, "model": { "preset": "tiny", "hidden_dropout": 0.05 },
              "trainer": { "steps": 3, "batch_size": 2, "checkpoint_directory": "run", "schedule": { "kind": "constant" }, "warmup_steps": 0 } }
            """);
        var (exit, _, stderr) = _cli.Run("train", "--config", "run.json");
        Assert.True(exit == 0, stderr);

        // the dropout is a model option the resumed run must rebuild: it comes from training_config.json, not from flags
        (exit, string stdout, stderr) = _cli.Run("train", "--resume", "--out", "run", "--steps", "5", "--json");
        Assert.True(exit == 0, stderr);
        Assert.Contains("resumed at step 3", stdout);
        var last = JsonNode.Parse(stdout.TrimEnd().Split('\n')[^1])!;
        Assert.Equal(5, (int)last["steps"]!);
        var saved = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "training_config.json")))!;
        Assert.Equal(0.05, (double)saved["model"]!["hidden_dropout"]!);
        Assert.Equal("constant", (string)saved["trainer"]!["schedule"]!["kind"]!);
        Assert.Equal(5, (int)saved["trainer"]!["steps"]!);
    }

    [Fact]
    public void A_vocabulary_that_does_not_match_the_tokenizer_is_refused_naming_both()
    {
        File.WriteAllText(Path.Combine(_cli.Directory, "run.json"), """{ "data": "text.txt", "model": { "preset": "tiny", "vocab_size": 65 } }""");
        var (exit, _, stderr) = _cli.Run("train", "--config", "run.json", "--print-config");
        Assert.Equal(2, exit);
        Assert.Contains("model.vocab_size 65 does not match the char tokenizer's 18 tokens", stderr);
    }

    [Fact]
    public void Objective_ul2_adds_its_tokens_keeps_the_mixture_with_the_run_and_resumes()
    {
        string output = Path.Combine(_cli.Directory, "run");
        var (exit, stdout, stderr) = _cli.Run(TrainProcess.Train(output, "--steps", "3", "--objective", "ul2", "--json"));
        Assert.True(exit == 0, stderr);
        Assert.Contains("objective: r3_15, r8_15, x3_50, x8_50, x64_15, x64_50, s (1 stage)", stdout);
        var tokenizer = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "tokenizer.json")))!;
        var special = tokenizer["special_tokens"]!.AsArray().Select(t => (string)t!).ToList();
        Assert.Equal(["[R]", "[X]", "[S]", "<extra_id_0>"], special.Take(4));
        Assert.Equal(18 + special.Count, (int)tokenizer["vocab_size"]!);
        var saved = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "training_config.json")))!;
        Assert.Equal(18 + special.Count, (int)saved["model"]!["vocab_size"]!);
        Assert.Equal("span_corruption", (string)saved["objective"]!["objectives"]![0]!["kind"]!);

        // the run continues with its own mixture and tokenizer, and samples from a prompt that holds a mode token
        (exit, stdout, stderr) = _cli.Run("train", "--resume", "--out", "run", "--steps", "4", "--json");
        Assert.True(exit == 0, stderr);
        Assert.Contains("resumed at step 3", stdout);
        (exit, stdout, stderr) = _cli.Run("generate", "--checkpoint", "run", "--prompt", "[S]the", "--tokens", "5", "--seed", "1", "--prompt-as-prefix");
        Assert.True(exit == 0, stderr);
        Assert.StartsWith("[S]the", stdout);
    }

    [Theory]
    [InlineData("bogus", "objective 'bogus' is not causal, ul2, a JSON object, or an existing file.")]
    [InlineData("{\"objectives\": [], \"schedule\": []}", "objective.objectives = 0 is invalid; allowed: at least one objective.")]
    [InlineData("{\"objectives\": [{\"name\": \"r\", \"kind\": \"span_corruption\", \"rate\": 0.2}], \"schedule\": []}", "unknown key 'rate'")]
    public void A_bad_objective_is_one_line_naming_it(string value, string message)
    {
        string output = Path.Combine(_cli.Directory, "run");
        var (exit, stdout, stderr) = _cli.Run(TrainProcess.Train(output, "--steps", "1", "--objective", value, "--print-config"));
        CliRunner.AssertOneLineError(new CliRunner.Result(exit, stdout, stderr), 2, message);
    }
}
