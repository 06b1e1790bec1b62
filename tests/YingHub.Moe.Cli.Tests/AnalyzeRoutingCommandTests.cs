using System.Text.Json;
using TorchSharp;
using YingHub.Moe.Core.Checkpoints;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;

namespace YingHub.Moe.Cli.Tests;

/// <summary><c>yinghub analyze-routing</c> and <c>yinghub generate --trace-routing</c> through the real program on a tiny checkpoint.</summary>
public sealed class AnalyzeRoutingCommandTests(TinyCheckpoint checkpoint) : IClassFixture<TinyCheckpoint>, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("yinghub-routing-cli").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static JsonElement LastJsonLine(string stdout) =>
        JsonDocument.Parse(stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)[^1]).RootElement;

    [Fact]
    public void Analyze_routing_writes_the_report_figures_and_table()
    {
        string output = Path.Combine(_dir, "report");
        var result = CliRunner.Run("analyze-routing", "--checkpoint", checkpoint.Directory, "--data", checkpoint.Corpus, "--early-checkpoint", checkpoint.Directory,
            "--capacity-factor", "0.5", "--tokens", "320", "--split", "all", "--buckets", "4", "--out", output, "--json");

        Assert.True(result.ExitCode == 0, result.ToString());
        var json = LastJsonLine(result.Out);
        Assert.Equal(320, json.GetProperty("tokens").GetInt32()); // 20 blocks of the context length 16: more than the held-out 10% holds
        var layer = Assert.Single(json.GetProperty("layers").EnumerateArray());
        Assert.Equal(1.0, layer.GetProperty("early_agreement").GetDouble()); // the same checkpoint as its own early state
        Assert.True(layer.GetProperty("dropped_share").GetDouble() > 0);     // 2 experts at half capacity must drop
        foreach (string file in new[] { "routing-report.json", "load-heatmap.png", "dropped-by-position.png", "specialization.png", "early-agreement.png", "top-tokens.md" })
            Assert.True(new FileInfo(Path.Combine(output, file)).Length > 0, file);
        var report = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "routing-report.json"))).RootElement;
        Assert.Equal(0.5, report.GetProperty("capacity_factor").GetDouble());
        var buckets = report.GetProperty("layers")[0].GetProperty("dropped_by_position").EnumerateArray().ToList();
        Assert.Equal(4, buckets.Count);
        Assert.Equal(320, buckets.Sum(b => b.GetProperty("assignments").GetInt64())); // top-1: one assignment per token
        Assert.Contains("## Layer 0", File.ReadAllText(Path.Combine(output, "top-tokens.md")));
    }

    [Fact]
    public void Analyze_routing_prints_a_table_by_default()
    {
        var result = CliRunner.Run("analyze-routing", "--checkpoint", checkpoint.Directory, "--data", checkpoint.Corpus, "--out", Path.Combine(_dir, "text"));
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("specialization (shuffled)", result.Out);
        Assert.Contains("wrote routing-report.json", result.Out);
        Assert.False(File.Exists(Path.Combine(_dir, "text", "early-agreement.png")));
    }

    [Theory]
    [InlineData("--tokens", "0", "--tokens = 0")]
    [InlineData("--capacity-factor", "0", "--capacity-factor = 0")]
    [InlineData("--split", "middle", "--split must be 'heldout' or 'all'")]
    [InlineData("--buckets", "0", "--buckets = 0")]
    public void Analyze_routing_refuses_bad_values_in_one_line(string option, string value, string message)
    {
        var result = CliRunner.Run("analyze-routing", "--checkpoint", checkpoint.Directory, "--data", checkpoint.Corpus, "--out", Path.Combine(_dir, "x"), option, value);
        CliRunner.AssertOneLineError(result, 2, message);
    }

    [Fact]
    public void Analyze_routing_refuses_a_corpus_without_one_block()
    {
        string tiny = Path.Combine(_dir, "tiny.txt");
        File.WriteAllText(tiny, "the fox");
        var result = CliRunner.Run("analyze-routing", "--checkpoint", checkpoint.Directory, "--data", tiny, "--split", "all", "--out", Path.Combine(_dir, "y"));
        CliRunner.AssertOneLineError(result, 1, "too short");
    }

    [Fact]
    public void Analyze_routing_refuses_an_early_checkpoint_of_another_architecture()
    {
        var tokenizer = CharTokenizer.FromCorpus(File.ReadAllText(checkpoint.Corpus));
        torch.manual_seed(2);
        using var other = new MoeForCausalLM(new MoeModelOptions
        {
            VocabSize = tokenizer.VocabSize, ContextLength = 16, HiddenSize = 16, NumHeads = 2, NumLayers = 1, NumExperts = 3, TopK = 1,
        });
        string early = Path.Combine(_dir, "three-experts");
        MoeCheckpoint.Save(other, early, staging => TokenizerFiles.Save(tokenizer, staging));

        var result = CliRunner.Run("analyze-routing", "--checkpoint", checkpoint.Directory, "--data", checkpoint.Corpus, "--early-checkpoint", early, "--out", Path.Combine(_dir, "z"));

        CliRunner.AssertOneLineError(result, 1, "is not an earlier state of", "experts (3)");
    }

    [Fact]
    public void Generate_traces_the_routing_of_every_generated_token()
    {
        var result = CliRunner.Run("generate", "--checkpoint", checkpoint.Directory, "--prompt", "the ", "--tokens", "20", "--seed", "3", "--trace-routing", "--json");
        Assert.True(result.ExitCode == 0, result.ToString());
        var routing = LastJsonLine(result.Out).GetProperty("routing").EnumerateArray().ToList();
        Assert.Equal(20, routing.Count); // beyond the context of 16: the later tokens are routed in their own windows
        Assert.Equal(Enumerable.Range(4, 20), routing.Select(r => r.GetProperty("position").GetInt32()));
        foreach (var token in routing)
        {
            var layer = Assert.Single(token.GetProperty("layers").EnumerateArray());
            int expert = Assert.Single(layer.GetProperty("experts").EnumerateArray()).GetInt32();
            Assert.InRange(expert, 0, 1);
            Assert.Equal(1.0, Assert.Single(layer.GetProperty("weights").EnumerateArray()).GetDouble(), 6); // top-1: the whole gate
        }

        var text = CliRunner.Run("generate", "--checkpoint", checkpoint.Directory, "--prompt", "the ", "--tokens", "3", "--seed", "3", "--trace-routing");
        Assert.True(text.ExitCode == 0, text.ToString());
        Assert.Contains("routing (experts and gate weights per MoE layer):", text.Out);
        Assert.Matches(@"\n\s+6 '.*'  L0: [01] \(1\.00\)", text.Out);
    }
}
