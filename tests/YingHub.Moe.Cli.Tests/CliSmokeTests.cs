using System.Text.Json;
using TorchSharp;
using YingHub.Moe.Core.Checkpoints;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;

namespace YingHub.Moe.Cli.Tests;

/// <summary>
/// A tiny untrained checkpoint (char tokenizer, one layer of two experts) and the corpus its tokenizer comes from,
/// made once for <see cref="CliSmokeTests"/>.
/// </summary>
public sealed class TinyCheckpoint : IDisposable
{
    public TinyCheckpoint()
    {
        Root = System.IO.Directory.CreateTempSubdirectory("yinghub-cli-checkpoint").FullName;
        Corpus = Path.Combine(Root, "corpus.txt");
        File.WriteAllText(Corpus, string.Concat(Enumerable.Repeat("the quick brown fox jumps over the lazy dog\n", 40)));
        var tokenizer = CharTokenizer.FromCorpus(File.ReadAllText(Corpus));
        torch.manual_seed(1);
        using var model = new MoeForCausalLM(new MoeModelOptions
        {
            VocabSize = tokenizer.VocabSize, ContextLength = 16, HiddenSize = 16, NumHeads = 2, NumLayers = 1, NumExperts = 2, TopK = 1,
        });
        Directory = Path.Combine(Root, "checkpoint");
        MoeCheckpoint.Save(model, Directory, staging => TokenizerFiles.Save(tokenizer, staging));
        VocabSize = tokenizer.VocabSize;
    }

    public string Root { get; }

    /// <summary>The checkpoint directory (config.json, model.safetensors, tokenizer.json).</summary>
    public string Directory { get; }

    /// <summary>A text file of the tokenizer's characters only.</summary>
    public string Corpus { get; }

    public int VocabSize { get; }

    public void Dispose() => System.IO.Directory.Delete(Root, recursive: true);
}

/// <summary>
/// Every command of <c>yinghub</c> through the real program (<see cref="CliRunner"/>): the main path, and the error
/// exits as one line on standard error with the documented exit code (1 for a failure, 2 for bad usage). <c>train</c>
/// only for its error exits: its main path belongs to the trainer's tests.
/// </summary>
public sealed class CliSmokeTests(TinyCheckpoint checkpoint) : IClassFixture<TinyCheckpoint>, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("yinghub-cli").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string WriteFile(string name, string text)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    private string Absent => Path.Combine(_dir, "absent");

    private static JsonElement LastJsonLine(string stdout) =>
        JsonDocument.Parse(stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)[^1]).RootElement;

    private static void AssertSuccess(CliRunner.Result result) => Assert.True(result.ExitCode == 0, result.ToString());

    // ---- generate ----

    [Fact]
    public void Generate_streams_the_requested_tokens()
    {
        var result = CliRunner.Run("generate", "--checkpoint", checkpoint.Directory, "--prompt", "the ", "--tokens", "6", "--seed", "3", "--json");
        AssertSuccess(result);
        Assert.StartsWith("the ", result.Out);
        JsonElement json = LastJsonLine(result.Out);
        Assert.Equal(6, json.GetProperty("tokens").GetInt32());
        Assert.Equal(6, json.GetProperty("text").GetString()!.Length); // char tokenizer: one character per token
        Assert.True(json.GetProperty("time_to_first_token_ms").GetDouble() > 0);
        Assert.True(json.GetProperty("steady_tokens_per_s").GetDouble() > 0);
        Assert.True(json.GetProperty("kv_cache").GetBoolean());
        Assert.Equal("", result.Err);
    }

    [Fact]
    public void Generate_with_an_annealed_temperature_and_its_floor_is_reproducible()
    {
        string[] args = ["generate", "--checkpoint", checkpoint.Directory, "--tokens", "8", "--seed", "5", "--anneal", "--min-temperature", "0.3", "--json"];
        var first = CliRunner.Run(args);
        AssertSuccess(first);
        Assert.Equal(LastJsonLine(first.Out).GetProperty("text").GetString(), LastJsonLine(CliRunner.Run(args).Out).GetProperty("text").GetString());
    }

    [Fact]
    public void Generate_errors_are_one_line()
    {
        CliRunner.AssertOneLineError(CliRunner.Run("generate", "--checkpoint", Absent), 1, "does not exist");
        CliRunner.AssertOneLineError(CliRunner.Run("generate", "--checkpoint", checkpoint.Directory, "--temperature", "0"), 2, "Temperature = 0");
        CliRunner.AssertOneLineError(CliRunner.Run("generate", "--checkpoint", checkpoint.Directory, "--anneal", "--min-temperature", "2"), 2,
            "MinTemperature = 2 is invalid; allowed: (0, Temperature = 0.8]");
        CliRunner.AssertOneLineError(CliRunner.Run("generate", "--checkpoint", checkpoint.Directory, "--prompt", "ZZZ"), 1, "The prompt cannot be encoded");
        CliRunner.AssertOneLineError(CliRunner.Run("generate", "--tokens", "5"), 2, "--checkpoint", "yinghub generate --help");
        CliRunner.AssertOneLineError(CliRunner.Run("generate", "--checkpoint", checkpoint.Directory, "--tokens", "many"), 2, "many");
    }

    // ---- eval ----

    [Fact]
    public void Eval_reports_loss_and_perplexity_of_the_held_out_blocks()
    {
        var result = CliRunner.Run("eval", "--checkpoint", checkpoint.Directory, "--data", checkpoint.Corpus, "--batches", "2", "--batch", "2", "--json");
        AssertSuccess(result);
        JsonElement json = LastJsonLine(result.Out);
        double loss = json.GetProperty("loss").GetDouble();
        Assert.InRange(loss, 0.5, 10);                                                  // an untrained model: about ln V
        Assert.Equal(Math.Exp(loss), json.GetProperty("perplexity").GetDouble(), 1e-6 * Math.Exp(loss));
        Assert.Equal(2, json.GetProperty("batches").GetInt32());
    }

    [Fact]
    public void Eval_errors_are_one_line()
    {
        CliRunner.AssertOneLineError(CliRunner.Run("eval", "--checkpoint", checkpoint.Directory, "--data", checkpoint.Corpus, "--batches", "0"), 2, "--batches (0)");
        CliRunner.AssertOneLineError(CliRunner.Run("eval", "--checkpoint", checkpoint.Directory, "--data", Absent), 1, "does not exist");
        CliRunner.AssertOneLineError(CliRunner.Run("eval", "--checkpoint", Absent, "--data", checkpoint.Corpus), 1, "does not exist");
        string foreign = WriteFile("foreign.txt", string.Concat(Enumerable.Repeat("ZZZ QQQ 123\n", 50)));
        CliRunner.AssertOneLineError(CliRunner.Run("eval", "--checkpoint", checkpoint.Directory, "--data", foreign), 1, "cannot evaluate it");
    }

    // ---- info ----

    [Fact]
    public void Info_shows_the_architecture_and_parameter_counts()
    {
        var result = CliRunner.Run("info", "--checkpoint", checkpoint.Directory);
        AssertSuccess(result);
        Assert.Contains($"tokenizer:  char, {checkpoint.VocabSize} tokens", result.Out);
        Assert.Contains("model:      1 layers, width 16, 2 heads, context 16", result.Out);
        Assert.Contains("experts:    2 per MoE layer (0 deep), top-1", result.Out);
        Assert.Contains("\"num_local_experts\": 2", result.Out);
    }

    [Fact]
    public void Info_errors_are_one_line()
    {
        CliRunner.AssertOneLineError(CliRunner.Run("info", "--checkpoint", Absent), 1, "does not exist");
        CliRunner.AssertOneLineError(CliRunner.Run("info"), 2, "--checkpoint", "yinghub info --help");
        string broken = Directory.CreateDirectory(Path.Combine(_dir, "broken")).FullName;
        File.Copy(Path.Combine(checkpoint.Directory, "tokenizer.json"), Path.Combine(broken, "tokenizer.json"));
        CliRunner.AssertOneLineError(CliRunner.Run("info", "--checkpoint", broken), 1, $"Checkpoint '{broken}'");
    }

    // ---- score ----

    /// <summary>A small lexicon in the CMU format, enough for a couplet.</summary>
    private string Lexicon() => WriteFile("small.dict", string.Join('\n',
        "shall SH AE1 L", "i AY1", "compare K AH0 M P EH1 R", "thee DH IY1", "to T UW1", "a AH0", "summer S AH1 M ER0",
        "s Z", "day D EY1", "thou DH AW1", "art AA1 R T", "more M AO1 R", "lovely L AH1 V L IY0", "and AH0 N D",
        "temperate T EH1 M P ER0 AH0 T", "play P L EY1"));

    [Fact]
    public void Score_prints_the_reward_its_components_and_the_lines()
    {
        var result = CliRunner.Run("score", "--lexicon", Lexicon(), "--text", "Shall I compare thee to a summer's day\nThou art more lovely and more play", "--json");
        AssertSuccess(result);
        Assert.StartsWith("total ", result.Out);
        Assert.Contains("rhyme scheme: AA", result.Out);
        Assert.Equal("AA", LastJsonLine(result.Out).GetProperty("rhyme_scheme").GetString());
        Assert.Equal("", result.Err);
    }

    [Fact]
    public void Score_with_a_malformed_lexicon_names_the_file_the_line_number_and_the_line()
    {
        string path = WriteFile("broken.dict", "day D EY1\nnight N AY1 TT\n");
        var result = CliRunner.Run("score", "--lexicon", path, "--text", "Shall I compare thee");
        CliRunner.AssertOneLineError(result, 1, path, "line 2", "unknown phoneme 'TT'", "\"night N AY1 TT\"");
    }

    [Fact]
    public void Score_usage_errors_exit_2()
    {
        CliRunner.AssertOneLineError(CliRunner.Run("score", "--lexicon", Lexicon()), 2, "Give exactly one of --text TEXT or --file FILE.");
        CliRunner.AssertOneLineError(CliRunner.Run("score", "--lexicon", Lexicon(), "--text", "a", "--reward", "nope"), 2, "--reward must be 'shakespeare' or an existing JSON file; got 'nope'.");
        CliRunner.AssertOneLineError(CliRunner.Run("score", "--lexicon", Path.Combine(_dir, "absent.dict"), "--text", "a"), 1, "absent.dict' does not exist");
        CliRunner.AssertOneLineError(CliRunner.Run("score", "--no-such-flag"), 2, "--no-such-flag", "yinghub score --help");
    }

    // ---- tokenize ----

    [Fact]
    public void Tokenize_encodes_and_decodes()
    {
        // cl100k's ids for "hello world", as OpenAI's tiktoken gives them
        var cl100k = CliRunner.Run("tokenize", "--tokenizer", "cl100k", "--text", "hello world");
        AssertSuccess(cl100k);
        Assert.Equal("15339 1917", cl100k.Out.Trim());
        Assert.Equal("hello world", CliRunner.Run("tokenize", "--tokenizer", "cl100k", "--decode", "--text", "15339, 1917").Out.Trim());

        // the checkpoint's char tokenizer: ids round-trip
        var encoded = CliRunner.Run("tokenize", "--tokenizer", "char", "--vocab", checkpoint.Directory, "--text", "fox dog", "--json");
        AssertSuccess(encoded);
        JsonElement json = LastJsonLine(encoded.Out);
        Assert.Equal(7, json.GetProperty("count").GetInt32());
        string ids = string.Join(' ', json.GetProperty("ids").EnumerateArray().Select(i => i.GetInt32()));
        Assert.Equal("fox dog", CliRunner.Run("tokenize", "--tokenizer", "char", "--vocab", checkpoint.Directory, "--decode", "--text", ids).Out.TrimEnd('\n', '\r'));
    }

    [Fact]
    public void Tokenize_errors_are_one_line()
    {
        CliRunner.AssertOneLineError(CliRunner.Run("tokenize", "--tokenizer", "cl100k", "--decode", "--text", "15339 x"), 1, "'x' is not a token id.");
        CliRunner.AssertOneLineError(CliRunner.Run("tokenize", "--tokenizer", "nope", "--text", "a"), 2, "nope", "yinghub tokenize --help");
        CliRunner.AssertOneLineError(CliRunner.Run("tokenize", "--tokenizer", "cl100k"), 2, "Give exactly one of --text TEXT or --file FILE.");
        CliRunner.AssertOneLineError(CliRunner.Run("tokenize", "--tokenizer", "char", "--vocab", Absent, "--text", "a"), 1, "does not exist");
    }

    // ---- doctor ----

    [Fact]
    public void Doctor_reports_the_machine_and_a_matmul_probe()
    {
        var result = CliRunner.Run("doctor", "--size", "16");
        AssertSuccess(result);
        Assert.Contains("torch threads: ", result.Out);
        Assert.Contains("matmul fp32 16x16: ", result.Out);
        Assert.Contains("matmul bf16 16x16: ", result.Out);
        Assert.Contains("precision: train ", result.Out);
    }

    [Theory]
    [InlineData(170.0, 680.0, "--amp bf16")] // this EPYC at 1024²: bf16 products 4x fp32's
    [InlineData(170.0, 340.0, "--amp bf16")] // exactly twice: bf16 pays
    [InlineData(170.0, 339.0, "in fp32")]    // just under
    [InlineData(170.0, 60.0, "in fp32")]     // a CPU without native bf16 emulates it
    public void Doctor_recommends_bf16_only_where_its_products_run_twice_as_fast(double fp32, double bf16, string expected)
    {
        string line = DoctorCommand.RecommendPrecision(fp32, bf16);
        Assert.StartsWith("precision: train ", line);
        Assert.Contains(expected, line);
    }

    [Fact]
    public void Doctor_errors_are_one_line()
    {
        CliRunner.AssertOneLineError(CliRunner.Run("doctor", "--size", "8"), 2, "--size must be in [16, 16384]; got 8.");
        CliRunner.AssertOneLineError(CliRunner.Run("doctor", "--size", "big"), 2, "big", "yinghub doctor --help");
    }

    // ---- train: error exits only ----

    [Fact]
    public void Train_errors_are_one_line()
    {
        string output = Path.Combine(_dir, "run");
        CliRunner.AssertOneLineError(CliRunner.Run("train", "--steps", "abc"), 2, "--steps must be an integer; got 'abc'.", "yinghub train --help");
        CliRunner.AssertOneLineError(CliRunner.Run("train", "--steps", "0", "--data", checkpoint.Corpus, "--out", output), 2, "trainer.steps = 0 is invalid; allowed: [1, 100000000] (from --steps).");
        CliRunner.AssertOneLineError(CliRunner.Run("train", "--amp", "fp8", "--data", checkpoint.Corpus, "--out", output), 2, "fp8");
        CliRunner.AssertOneLineError(CliRunner.Run("train", "--data", Path.Combine(_dir, "absent.txt"), "--steps", "1", "--out", output), 1, "absent.txt' does not exist");
        Assert.False(Directory.Exists(output)); // nothing was trained or saved
    }

    // ---- the root ----

    [Fact]
    public void An_unknown_command_exits_2_pointing_at_the_help()
    {
        // System.CommandLine reports two problems here (the unknown token and the missing command): one line each
        var result = CliRunner.Run("frobnicate");
        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.True(result.Err.Contains("'frobnicate'"), result.ToString());
        Assert.All(result.ErrLines, line => Assert.EndsWith("(see 'yinghub --help')", line));
        Assert.DoesNotContain("   at ", result.Err);
    }
}
