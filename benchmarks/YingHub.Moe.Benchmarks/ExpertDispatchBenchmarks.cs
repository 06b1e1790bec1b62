using BenchmarkDotNet.Attributes;
using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Benchmarks;

/// <summary>
/// One MoE layer's feed-forward work four ways, on the same experts and routing:
/// (a) <see cref="DenseMasked"/>: every expert on every token, masked by the gates (the YingHub-v2 way);
/// (b) <see cref="MaskLoop"/>: per expert, boolean-mask the tokens that chose it (the makeMoE way);
/// (c) <see cref="SortedDispatch"/>: the library's sparse block (sort by expert, one slice per expert, index_add_);
/// (d) <see cref="DenseIdeal"/>: one dense FFN of hidden width k·4d: the same active FLOPs with no routing at all.
/// Mode: forward only, or forward + backward (gradients of the input and every weight).
/// The full grid is 32 shapes × 4 variants; with <c>YINGHUB_BENCH_QUICK=1</c> only the target shape (N = 4096,
/// d = 512, E = 8, k = 2) runs.
/// </summary>
public class ExpertDispatchBenchmarks
{
    private SparseMoeBlock _block = null!;
    private DenseFeedForward _ideal = null!;
    private Tensor _x = null!;

    private static readonly bool Quick = Environment.GetEnvironmentVariable("YINGHUB_BENCH_QUICK") == "1";

    /// <summary>Tokens N = B·T.</summary>
    [ParamsSource(nameof(Ns))] public int N { get; set; }

    /// <summary>Model width d.</summary>
    [ParamsSource(nameof(Ds))] public int D { get; set; }

    /// <summary>Experts E.</summary>
    [ParamsSource(nameof(Es))] public int E { get; set; }

    /// <summary>Experts per token k.</summary>
    [ParamsSource(nameof(Ks))] public int K { get; set; }

    /// <summary>Values of N.</summary>
    public static int[] Ns => Quick ? [4096] : [512, 4096];

    /// <summary>Values of d.</summary>
    public static int[] Ds => Quick ? [512] : [128, 512];

    /// <summary>Values of E.</summary>
    public static int[] Es => Quick ? [8] : [8, 16];

    /// <summary>Values of k.</summary>
    public static int[] Ks => Quick ? [2] : [1, 2];

    /// <summary>Forward only, or forward and backward.</summary>
    [Params(false, true)] public bool Backward { get; set; }

    /// <summary>cpu, plus cuda when a CUDA backend is referenced and a GPU is present.</summary>
    [ParamsSource(nameof(Devices))] public string Device { get; set; } = "cpu";

    /// <summary>The devices to run on.</summary>
    public static IEnumerable<string> Devices => torch.cuda.is_available() ? ["cpu", "cuda"] : ["cpu"];

    [GlobalSetup]
    public void Setup()
    {
        torch.manual_seed(0);
        var options = new MoeModelOptions
        {
            HiddenSize = D, NumHeads = 1, NumExperts = E, TopK = K, ExpertMultiplier = 4, Activation = ExpertActivation.Relu,
            Router = RouterKind.TopK, DenseMultiplier = 4 * K,
        };
        var device = torch.device(Device);
        _block = new SparseMoeBlock(options);
        _block.to(device).train();
        _ideal = new DenseFeedForward(options);
        _ideal.to(device).train();
        _x = torch.randn(new long[] { 1, N, D }, device: device);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _block.Dispose();
        _ideal.Dispose();
        _x.Dispose();
    }

    [Benchmark(Description = "(a) dense-masked")]
    public void DenseMasked() => Run(x =>
    {
        var flat = x.reshape(N, D);
        var route = _block.Router.call(flat);
        var gates = torch.zeros(N, E, device: x.device).scatter(1, route.Indices, route.Weights); // (N, E)
        var y = torch.zeros_like(flat);
        for (int e = 0; e < E; e++) y = y + gates[.., e..(e + 1)] * _block.RunExpert(e, flat);
        return y;
    });

    [Benchmark(Description = "(b) mask loop")]
    public void MaskLoop() => Run(x =>
    {
        var flat = x.reshape(N, D);
        var route = _block.Router.call(flat);
        var y = torch.zeros_like(flat);
        for (int e = 0; e < E; e++)
        {
            var chosen = route.Indices.eq(e);                     // (N, k)
            var mask = chosen.any(-1);                            // (N)
            if (!mask.any().item<bool>()) continue;
            var gate = (route.Weights * chosen).sum(-1)[mask];   // (n_e)
            var rows = mask.nonzero().squeeze(1);                 // (n_e)
            y = y.index_add(0, rows, _block.RunExpert(e, flat[mask]) * gate.unsqueeze(1), 1);
        }

        return y;
    });

    [Benchmark(Description = "(c) sorted dispatch", Baseline = true)]
    public void SortedDispatch() => Run(x => _block.Forward(x).Hidden);

    [Benchmark(Description = "(d) dense FFN, k·4d hidden")]
    public void DenseIdeal() => Run(x => _ideal.call(x));

    private void Run(Func<Tensor, Tensor> layer)
    {
        using var scope = torch.NewDisposeScope();
        var x = Backward ? _x.detach().requires_grad_(true) : _x;
        using var grad = Backward ? null : torch.no_grad();
        var y = layer(x);
        if (Backward)
        {
            y.sum().backward();
            _block.zero_grad();
            _ideal.zero_grad();
        }

        if (x.device_type == DeviceType.CUDA) torch.cuda.synchronize();
    }
}
