using System.Diagnostics;
using System.Text.Json;
using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Losses;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Precision;
using static TorchSharp.torch;

namespace YingHub.Moe.Benchmarks;

/// <summary>
/// Where a training step's time goes, part by part, in float32 and under bf16 autocast: each part of a decoder layer
/// (the real modules of the library, built from the preset's options) runs forward and backward on inputs of the
/// model's real shapes, timed separately; then the matrix products at those shapes alone (GFLOP/s per precision, the
/// peak MFU should be measured against). Prints one JSON line per part and precision.
/// <code>
/// dotnet run -c Release --project benchmarks/YingHub.Moe.Benchmarks -- step-profile --preset yinghub-v2 --batch 32 --block 128 [--reps 10] [--precision fp32,bf16]
/// </code>
/// The parts run in training mode (dropout on) and are summed over the model's layers in the "per step" column, so
/// the sum can be checked against the <c>throughput --profile</c> forward and backward times.
/// </summary>
internal static class StepProfile
{
    public static int Run(string[] args)
    {
        var a = new BenchmarkArguments(args);
        var options = MoePresets.Get(a.Get("--preset", "yinghub-v2"));
        int batch = a.Int("--batch", 32), block = a.Int("--block", options.ContextLength), reps = a.Int("--reps", 10);
        string[] precisions = a.Get("--precision", "fp32,bf16").Split(',');
        options.ContextLength = Math.Max(options.ContextLength, block);
        torch.manual_seed(1337);
        long n = (long)batch * block, c = options.HiddenSize, hd = c / options.NumHeads;
        int layers = options.NumLayers;

        using var norm = Norms.Create(options);
        using var attention = new CausalSelfAttention(options);
        using var qkv = new InputMajorLinear((int)c, (int)(3 * c), options.HasQkvBias, options);
        using var outProj = new InputMajorLinear((int)c, (int)c, options.HasAttentionOutputBias, options);
        using var moe = new SparseMoeBlock(options);
        using var router = new Router(options);
        using var deep = options.DeepExperts > 0 ? new ExpertBank(options.DeepExperts, deep: true, options) : null;
        using var simple = options.NumExperts > options.DeepExperts ? new ExpertBank(options.NumExperts - options.DeepExperts, deep: false, options) : null;
        using var head = torch.nn.Linear(c, options.VocabSize, hasBias: options.LmHeadBias);
        foreach (var m in new torch.nn.Module[] { norm, attention, qkv, outProj, moe, router, head }) m.train();
        long perExpert = n * options.TopK / options.NumExperts; // the tokens an expert gets under balanced routing

        if (a.Has("--attention")) return AttentionVariants(batch, options.NumHeads, block, hd, options.AttentionDropout, reps);
        if (a.Has("--ops")) return Ops(batch * options.NumHeads, block, hd, n, c, options.ExpertWidth, reps);
        foreach (string name in precisions)
        {
            ScalarType? dtype = name.Trim() switch
            {
                "fp32" => null,
                "bf16" => ScalarType.BFloat16,
                _ => throw new ArgumentException($"--precision {name}: fp32 or bf16 expected."),
            };
            var low = dtype ?? ScalarType.Float32; // what a product's output is under the scope
            var parts = new (string Name, int PerStep, Func<Tensor[]> Inputs, Func<Tensor[], Tensor> Forward)[]
            {
                ("norm", 2 * layers, () => [Input(n, c)], x => norm.call(x[0].view(batch, block, c))),
                ("attention", layers, () => [Input(n, c)], x => attention.Forward(x[0].view(batch, block, c), null, null, 0)),
                ("attention.qkv", layers, () => [Input(n, c)], x => qkv.call(x[0])),
                ("attention.core", layers, () => [Input(batch * options.NumHeads * block * hd, 1, low), Input(batch * options.NumHeads * block * hd, 1, low), Input(batch * options.NumHeads * block * hd, 1, low)],
                    x => CausalSelfAttention.DropoutAttention(Heads(x[0]), Heads(x[1]), Heads(x[2]), 0, options.AttentionDropout)),
                ("attention.out", layers, () => [Input(n, c, low)], x => outProj.call(x[0])),
                ("moe", layers, () => [Input(n, c)], x => moe.Forward(x[0].view(batch, block, c), new MoeBlockRequest(LoadBalancing: true, UtilizationKl: options.UtilizationKlCoef > 0), 0).Hidden),
                ("moe (no losses)", layers, () => [Input(n, c)], x => moe.Forward(x[0].view(batch, block, c), new MoeBlockRequest(), 0).Hidden),
                ("moe (eval mode)", layers, () => [Input(n, c)], x => { moe.eval(); var y = moe.Forward(x[0].view(batch, block, c), new MoeBlockRequest(), 0).Hidden; moe.train(); return y; }),
                ("moe.router", layers, () => [Input(n, c)], x => router.call(x[0]).Weights),
                ("moe.experts", layers, () => Enumerable.Range(0, options.NumExperts).Select(_ => Input(perExpert, c, low)).ToArray(),
                    x => torch.cat([.. deep?.Forward(x[..options.DeepExperts]).OfType<Tensor>() ?? [], .. simple?.Forward(x[options.DeepExperts..]).OfType<Tensor>() ?? []], 0)),
                ("moe.dispatch", layers, () => [Input(n, c), Input(n, options.NumExperts)], x => Dispatch(x[0], x[1], options, low)),
                ("moe.dispatch.gather", layers, () => [Input(n, c)], x => Autocast.CastFloat(x[0].index_select(0, torch.randint(n, n * options.TopK, dtype: ScalarType.Int64)))),
                ("moe.dispatch.combine", layers, () => [Input(n * options.TopK, c, low), Input(n * options.TopK, 1)],
                    x => torch.zeros(n, c).index_add_(0, torch.randint(n, n * options.TopK, dtype: ScalarType.Int64), x[0] * x[1], 1)),
                ("moe.dispatch.combine32", layers, () => [Input(n * options.TopK, c, low), Input(n * options.TopK, 1)],
                    x => torch.zeros(n, c).index_add_(0, torch.randint(n, n * options.TopK, dtype: ScalarType.Int64), x[0].to(ScalarType.Float32) * x[1], 1)),
                ("moe.expert_dropout", layers, () => [Input(n * options.TopK, c, low)], x => Regularization.Dropout(x[0], options.Dropout, training: true)),
                ("moe.losses", layers, () => [Input(n, options.NumExperts)], x => Losses(x[0], options)),
                ("moe.experts (rows vary per call)", layers, () => Enumerable.Range(0, options.NumExperts).Select(_ => Input(perExpert + Random.Shared.Next(-64, 64), c, low)).ToArray(),
                    x => torch.cat([.. deep?.Forward(x[..options.DeepExperts]).OfType<Tensor>() ?? [], .. simple?.Forward(x[options.DeepExperts..]).OfType<Tensor>() ?? []], 0)),
                ("residual", 2 * layers, () => [Input(n, c), Input(n, c, low)], x => x[0] + x[1]),
                ("lm_head+loss", 1, () => [Input(n, c)], x => torch.nn.functional.cross_entropy(Autocast.Linear(x[0], head.weight!, head.bias).to(ScalarType.Float32), torch.randint(options.VocabSize, n, dtype: ScalarType.Int64))),
            };
            Tensor Heads(Tensor flat) => flat.view(batch, options.NumHeads, block, hd);

            foreach (var part in parts)
            {
                var (forward, backward) = Time(part.Inputs, part.Forward, dtype, reps);
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    part = part.Name, precision = name, forward_ms = Math.Round(forward, 2), backward_ms = Math.Round(backward, 2),
                    per_step_ms = Math.Round((forward + backward) * part.PerStep, 1), times_per_step = part.PerStep,
                }));
            }

            // the products alone at the model's shapes: (rows, in) @ (in, out)
            var shapes = new (string Name, long Rows, long In, long Out, long Batch)[]
            {
                ("qkv", n, c, 3 * c, 1), ("attn_out", n, c, c, 1), ("scores q·kᵀ", block, hd, block, batch * options.NumHeads),
                ("probs·v", block, block, hd, batch * options.NumHeads), ("expert_fc1", perExpert, c, options.ExpertWidth, 1),
                ("deep_fc2", perExpert, options.ExpertWidth, options.ExpertWidth, 1), ("expert_fc2", perExpert, options.ExpertWidth, c, 1),
                ("lm_head", n, c, options.VocabSize, 1),
            };
            foreach (var (shape, rows, inF, outF, count) in shapes)
            {
                double ms = TimeProduct(rows, inF, outF, count, low, reps);
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    product = shape, precision = name, shape = $"{count} x ({rows} x {inF}) @ ({inF} x {outF})", ms = Math.Round(ms, 3),
                    gflops = Math.Round(2.0 * count * rows * inF * outF / (ms / 1000) / 1e9, 1),
                }));
            }
        }

        return 0;
    }

    /// <summary>
    /// The MoE block's dispatch without experts: top-k of random router logits, the plan, gather (cast to the product
    /// type as the block does), split and concatenation, then the weighted scatter back.
    /// </summary>
    private static Tensor Dispatch(Tensor x, Tensor logits, MoeModelOptions options, ScalarType low)
    {
        var (weights, indices) = logits.softmax(-1).topk(options.TopK, dim: -1);
        using var plan = TokenDispatch.Plan(indices, weights, options.NumExperts, capacity: null);
        var routed = Autocast.CastFloat(x.index_select(0, plan.TokenIndex)); // (M, C)
        var pieces = routed.split(plan.Kept);
        return TokenDispatch.Combine(plan, torch.cat(pieces, 0), x.size(0));   // (N, C)
    }

    /// <summary>The router losses the preset asks for, from random logits.</summary>
    private static Tensor Losses(Tensor logits, MoeModelOptions options)
    {
        var probs = logits.softmax(-1);
        var (_, indices) = probs.topk(options.TopK, dim: -1);
        var loss = RouterLosses.LoadBalancing(probs, indices);
        if (options.UtilizationKlCoef > 0) loss = loss + RouterLosses.WindowKlToUniform(torch.ones(options.NumExperts), probs, options.TopK);
        return loss;
    }

    /// <summary>Single operations of a step at the model's shapes, float32 against bfloat16 (forward only).</summary>
    private static int Ops(long heads, long t, long hd, long n, long c, long h, int reps)
    {
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.BFloat16 })
        {
            using var scope = torch.NewDisposeScope();
            var q = torch.randn(heads, t, hd, dtype: dtype);
            var k = torch.randn(heads, t, hd, dtype: dtype);
            var scores = torch.randn(heads, t, t, dtype: dtype);
            var fused = torch.randn(new[] { n / t, t, 3, heads * t / n, hd }, dtype: dtype); // (B, T, 3, nh, hd)
            var qView = fused.permute(2, 0, 3, 1, 4)[0].reshape(heads, t, hd);            // a copy: what SplitHeads feeds
            var flat = torch.randn(n, c, dtype: dtype);
            var index = torch.randint(n, 2 * n, dtype: ScalarType.Int64);
            var rows = torch.randn(2 * n, c, dtype: dtype);
            var hidden = torch.randn(n * 2 / 6, h, dtype: dtype);
            var ops = new (string Name, Func<Tensor> Op)[]
            {
                ("bmm q·kᵀ (transposed view)", () => q.bmm(k.transpose(1, 2))),
                ("bmm q·kᵀ (contiguous kᵀ)", () => q.bmm(k.transpose(1, 2).contiguous())),
                ("contiguous kᵀ", () => k.transpose(1, 2).contiguous()),
                ("permuted q scaled", () => fused.permute(2, 0, 3, 1, 4)[0] * 0.17),
                ("cast scores to other type", () => scores.to(dtype == ScalarType.Float32 ? ScalarType.BFloat16 : ScalarType.Float32)),
                ("softmax scores", () => scores.softmax(-1)),
                ("attention core forward", () => CausalSelfAttention.DropoutAttention(q.view(n / t, -1, t, hd), k.view(n / t, -1, t, hd), k.view(n / t, -1, t, hd), 0, 0.3)),
                ("causal bias (T, S) + add", () => { var hid = torch.arange(t).unsqueeze(0) > torch.arange(t).unsqueeze(1); var bias = torch.zeros(hid.shape).masked_fill_(hid, double.NegativeInfinity); return scores.to(ScalarType.Float32).add_(bias); }),
                ("dropout scores (library)", () => Regularization.Dropout(scores, 0.3, training: true)),
                ("uniform.ge_(p) in place", () => { var u = torch.rand(scores.shape); return u.ge_(0.3); }),
                ("uniform >= p (bool)", () => { var u = torch.rand(scores.shape); return u >= 0.3; }),
                ("where(u >= p, x·s, 0)", () => { var u = torch.rand(scores.shape); return torch.where(u >= 0.3, scores * (1 / 0.7), 0.0); }),
                ("x·(u >= p)·s", () => { var u = torch.rand(scores.shape); return scores.mul(u >= 0.3).mul_(1 / 0.7); }),
                ("randint int32 quarter", () => torch.randint(int.MinValue, int.MaxValue, [scores.numel() / 4], dtype: ScalarType.Int32)),
                ("randint int64 eighth", () => torch.randint(long.MinValue, long.MaxValue, [scores.numel() / 8], dtype: ScalarType.Int64)),
                ("rand (shape, fp32)", () => torch.rand(scores.shape)),
                ("rand_like fp32 scores", () => torch.rand_like(scores, dtype: ScalarType.Float32)),
                ("scores * scores", () => scores * scores),
                ("index_select rows", () => flat.index_select(0, index)),
                ("index_add rows", () => torch.zeros(n, c, dtype: dtype).index_add_(0, index, rows, 1)),
                ("gelu tanh (expert hidden)", () => torch.nn.functional.gelu(hidden, TorchSharp.Modules.GELU.Approximate.tanh)),
                ("layer_norm (N, C)", () => torch.nn.functional.layer_norm(flat, [c])),
            };
            foreach (var (name, op) in ops)
            {
                var times = new List<double>();
                for (int i = 0; i < reps + 2; i++)
                {
                    var clock = Stopwatch.StartNew();
                    using var y = op();
                    if (i >= 2) times.Add(clock.Elapsed.TotalMilliseconds);
                }

                Console.WriteLine(JsonSerializer.Serialize(new { op = name, dtype = dtype.ToString(), ms = Math.Round(Statistics.Median(times), 3), min_ms = Math.Round(times.Min(), 3) }));
            }
        }

        return 0;
    }

    /// <summary>Forward + backward of the attention core on q, k, v taken from a fused (B, T, 3, nh, hd) projection, in variants.</summary>
    private static int AttentionVariants(int b, int heads, long t, long hd, double p, int reps)
    {
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.BFloat16, ScalarType.Float32 })
        {
            var marks = new List<double>[8];
            for (int m = 0; m < marks.Length; m++) marks[m] = [];
            for (int i = 0; i < reps + 4; i++)
            {
                using var scope = torch.NewDisposeScope();
                var fused = torch.randn(new long[] { b, t, 3, heads, hd }, dtype: dtype);
                var qkv = fused.permute(2, 0, 3, 1, 4).unbind(0);
                var clock = Stopwatch.StartNew();
                var at = new double[8];
                var q3 = (qkv[0] * (1.0 / Math.Sqrt(hd))).reshape(b * heads, t, hd); at[0] = clock.Elapsed.TotalMilliseconds;
                var k3 = qkv[1].reshape(b * heads, t, hd); var v3 = qkv[2].reshape(b * heads, t, hd); at[1] = clock.Elapsed.TotalMilliseconds;
                var scores = torch.bmm(q3, k3.transpose(1, 2)).view(b, heads, t, t); at[2] = clock.Elapsed.TotalMilliseconds;
                if (scores.dtype != ScalarType.Float32) scores = scores.to(ScalarType.Float32);
                at[3] = clock.Elapsed.TotalMilliseconds;
                var hidden = torch.arange(t).unsqueeze(0) > torch.arange(t).unsqueeze(1);
                var bias = torch.zeros(hidden.shape).masked_fill_(hidden, double.NegativeInfinity);
                var probs = scores.add_(bias).softmax(-1); at[4] = clock.Elapsed.TotalMilliseconds;
                probs = Regularization.Dropout(probs, p, training: true); at[5] = clock.Elapsed.TotalMilliseconds;
                var pv = probs.to(dtype); at[6] = clock.Elapsed.TotalMilliseconds;
                var y = torch.bmm(pv.view(b * heads, t, t), v3); at[7] = clock.Elapsed.TotalMilliseconds;
                if (i < 4) continue;
                for (int m = 0; m < 8; m++) marks[m].Add(at[m] - (m == 0 ? 0 : at[m - 1]));
            }

            string[] steps = ["q scale+copy", "k,v copies", "bmm scores", "scores to fp32", "bias+softmax", "dropout", "probs to type", "bmm probs·v"];
            Console.WriteLine(JsonSerializer.Serialize(new { dtype = dtype.ToString(), steps = steps.Select((n, m) => $"{n} {Statistics.Median(marks[m]):F2}").ToArray() }));
        }

        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.BFloat16 })
        {
            var variants = new (string Name, Func<Tensor, Tensor, Tensor, Tensor> Core)[]
            {
                ("library (4-D views)", (q, k, v) => CausalSelfAttention.DropoutAttention(q, k, v, 0, p)),
                ("4-D matmul (before)", (q, k, v) =>
                {
                    var scores = torch.matmul(q * (1.0 / Math.Sqrt(hd)), k.transpose(-2, -1)).to(ScalarType.Float32);
                    var hidden = torch.arange(t).unsqueeze(0) > torch.arange(t).unsqueeze(1);
                    var bias = torch.zeros(hidden.shape).masked_fill_(hidden, double.NegativeInfinity);
                    var probs = Regularization.Dropout(scores.add_(bias).softmax(-1), p, training: true);
                    return torch.matmul(probs.to(v.dtype), v);
                }),
                ("no dropout (math)", (q, k, v) => CausalSelfAttention.DropoutAttention(q, k, v, 0, 1e-12)),
                ("sdpa fused, no dropout", (q, k, v) => torch.nn.functional.scaled_dot_product_attention(q, k, v, null, 0, true)),
            };
            for (int round = 0; round < 2; round++)
            foreach (var (name, core) in variants)
            {
                var fs = new List<double>(); var bs = new List<double>();
                for (int i = 0; i < reps + 2; i++)
                {
                    using var scope = torch.NewDisposeScope();
                    var fused = torch.randn(new long[] { b, t, 3, heads, hd }, dtype: dtype).requires_grad_(true);
                    var qkv = fused.permute(2, 0, 3, 1, 4).unbind(0); // 3 × (B, nh, T, hd) views, as SplitHeads
                    var clock = Stopwatch.StartNew();
                    var y = core(qkv[0], qkv[1], qkv[2]);
                    double fm = clock.Elapsed.TotalMilliseconds;
                    var grad = torch.randn_like(y);
                    clock.Restart();
                    y.backward([grad]);
                    if (i < 2) continue;
                    fs.Add(fm);
                    bs.Add(clock.Elapsed.TotalMilliseconds);
                }

                Console.WriteLine(JsonSerializer.Serialize(new { variant = name, dtype = dtype.ToString(), round, forward_ms = Math.Round(Statistics.Median(fs), 2), backward_ms = Math.Round(Statistics.Median(bs), 2), forward_min = Math.Round(fs.Min(), 2), backward_min = Math.Round(bs.Min(), 2) }));
            }
        }

        return 0;
    }

    /// <summary>A fresh leaf of <paramref name="rows"/> × <paramref name="cols"/> normal values that requires grad.</summary>
    private static Tensor Input(long rows, long cols, ScalarType dtype = ScalarType.Float32) =>
        torch.randn(rows, cols, dtype: dtype).requires_grad_(true);

    /// <summary>Median forward and backward time (ms) of <paramref name="forward"/> over <paramref name="reps"/> runs after two warm-up runs.</summary>
    private static (double Forward, double Backward) Time(Func<Tensor[]> inputs, Func<Tensor[], Tensor> forward, ScalarType? dtype, int reps)
    {
        var fs = new List<double>(); var bs = new List<double>();
        for (int i = 0; i < reps + 2; i++)
        {
            using var scope = torch.NewDisposeScope();
            var x = inputs();
            var grad = (Tensor?)null;
            var clock = Stopwatch.StartNew();
            Tensor y;
            using (dtype is { } t ? Autocast.Enable(t) : null) y = forward(x);
            double forwardMs = clock.Elapsed.TotalMilliseconds;
            grad = torch.randn_like(y);
            clock.Restart();
            y.backward([grad]);
            double backwardMs = clock.Elapsed.TotalMilliseconds;
            if (i < 2) continue;
            fs.Add(forwardMs);
            bs.Add(backwardMs);
        }

        return (Statistics.Median(fs), Statistics.Median(bs)); // medians: a background thread taking a core for a moment (JIT, GC) skews a mean
    }

    /// <summary>Mean time (ms) of <paramref name="count"/> products (rows, in) @ (in, out) in <paramref name="dtype"/>.</summary>
    private static double TimeProduct(long rows, long inF, long outF, long count, ScalarType dtype, int reps)
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.randn(count, rows, inF, dtype: dtype);
        var w = torch.randn(count, inF, outF, dtype: dtype);
        double total = 0;
        for (int i = 0; i < reps + 2; i++)
        {
            var clock = Stopwatch.StartNew();
            using var y = count == 1 ? x[0].mm(w[0]) : x.bmm(w);
            if (i >= 2) total += clock.Elapsed.TotalMilliseconds;
        }

        return total / reps;
    }
}
