using BenchmarkDotNet.Attributes;
using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Generation;
using YingHub.Moe.Core.Modules;

namespace YingHub.Moe.Benchmarks;

/// <summary>
/// Greedy decoding of <see cref="Tokens"/> new tokens from a one-token prompt, with the KV cache and by full
/// recomputation of the window per token (the makeMoE / YingHub-v2 way), on a preset's shape with char tokens.
/// With <c>yinghub-v2</c> (context 128) 256 tokens slide the window past the context.
/// </summary>
public class GenerationBenchmarks
{
    private MoeForCausalLM _model = null!;

    /// <summary>The model shape.</summary>
    [Params("yinghub-v2", "makemoe")] public string Preset { get; set; } = "yinghub-v2";

    /// <summary>New tokens per run.</summary>
    [Params(256)] public int Tokens { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        torch.manual_seed(0);
        _model = DecodingSpeed.UntrainedModel(Preset);
        _model.eval();
    }

    [GlobalCleanup]
    public void Cleanup() => _model.Dispose();

    [Benchmark(Baseline = true, Description = "recompute per token")]
    public long[] Recompute() => new TokenGenerator(_model).Generate([0], new SamplingOptions { MaxNewTokens = Tokens, Greedy = true, UseCache = false });

    [Benchmark(Description = "KV cache")]
    public long[] Cached() => new TokenGenerator(_model).Generate([0], new SamplingOptions { MaxNewTokens = Tokens, Greedy = true });
}
