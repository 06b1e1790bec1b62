using System.Text.Json.Nodes;
using TorchSharp;
using YingHub.Moe.Core.Checkpoints;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Interop;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;

namespace YingHub.Moe.Cli.Tests;

/// <summary><c>yinghub export --format hf-mixtral</c>, and <c>info</c> / <c>generate</c> / <c>eval</c> reading the Hugging Face directory it writes.</summary>
public sealed class ExportCommandTests : IDisposable
{
    private const string Vocabulary = "\n !',.:;?abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    private readonly string _dir = Directory.CreateTempSubdirectory("yinghub-export-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A small checkpoint with a char tokenizer, saved through the library as training does.</summary>
    private string Checkpoint(string preset, Action<MoeModelOptions>? change = null)
    {
        var options = MoePresets.Get(preset);
        (options.VocabSize, options.HiddenSize, options.NumLayers, options.NumExperts, options.ContextLength) = (Vocabulary.Length, 32, 2, 4, 32);
        if (preset == "mixtral") (options.NumHeads, options.NumKeyValueHeads, options.IntermediateSize) = (4, 2, 48);
        change?.Invoke(options);
        torch.manual_seed(5);
        using var model = new MoeForCausalLM(options);
        string dir = Path.Combine(_dir, preset);
        MoeCheckpoint.Save(model, dir, staging => TokenizerFiles.Save(new CharTokenizer(Vocabulary), staging));
        return dir;
    }

    [Fact]
    public void A_mixtral_checkpoint_exports_sharded_and_the_export_runs_in_info_generate_and_eval()
    {
        string checkpoint = Checkpoint("mixtral");
        string hf = Path.Combine(_dir, "hf");
        var result = CliRunner.Run("export", "--checkpoint", checkpoint, "--format", "hf-mixtral", "--out", hf, "--max-shard-size", "40KB");
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("hf-mixtral", result.Out);
        Assert.True(File.Exists(Path.Combine(hf, MixtralExport.IndexFile)));
        Assert.Equal("mixtral", JsonNode.Parse(File.ReadAllText(Path.Combine(hf, "config.json")))!["model_type"]!.GetValue<string>());
        Assert.Equal("WordLevel", JsonNode.Parse(File.ReadAllText(Path.Combine(hf, "tokenizer.json")))!["model"]!["type"]!.GetValue<string>());

        var info = CliRunner.Run("info", "--checkpoint", hf);
        Assert.True(info.ExitCode == 0, info.ToString());
        Assert.Contains("4 heads (2 key/value)", info.Out);
        var generate = CliRunner.Run("generate", "--checkpoint", hf, "--prompt", "To be", "--tokens", "8", "--seed", "1");
        Assert.True(generate.ExitCode == 0, generate.ToString());
        string corpus = Path.Combine(_dir, "corpus.txt");
        File.WriteAllText(corpus, string.Concat(Enumerable.Repeat("to be, or not to be: that is the question.\n", 40)));
        var eval = CliRunner.Run("eval", "--checkpoint", hf, "--data", corpus, "--batches", "1", "--batch", "2", "--json");
        Assert.True(eval.ExitCode == 0, eval.ToString());
        var original = CliRunner.Run("eval", "--checkpoint", checkpoint, "--data", corpus, "--batches", "1", "--batch", "2", "--json");
        double Loss(CliRunner.Result r) => JsonNode.Parse(r.Out)!["loss"]!.GetValue<double>();
        Assert.Equal(Loss(original), Loss(eval)); // the same loss from the export as from the checkpoint
    }

    [Fact]
    public void A_model_the_layout_cannot_express_and_a_bad_size_are_one_line_errors()
    {
        string tiny = Checkpoint("tiny");
        var refused = CliRunner.Run("export", "--checkpoint", tiny, "--out", Path.Combine(_dir, "out"));
        CliRunner.AssertOneLineError(refused, 1, "Mixtral layout", "learned positions", "LayerNorm", "Gelu experts");
        Assert.False(Directory.Exists(Path.Combine(_dir, "out")));
        var size = CliRunner.Run("export", "--checkpoint", tiny, "--out", Path.Combine(_dir, "out"), "--max-shard-size", "5 parsecs");
        CliRunner.AssertOneLineError(size, 2, "--max-shard-size", "5 parsecs");
        var format = CliRunner.Run("export", "--checkpoint", tiny, "--out", Path.Combine(_dir, "out"), "--format", "gguf");
        Assert.NotEqual(0, format.ExitCode);
    }
}
