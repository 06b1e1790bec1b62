using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Testing;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Modules;

public class FewTokenDispatchTests
{
    [SimdKernelTheory]
    [InlineData(ExpertActivation.Relu, 5)]
    [InlineData(ExpertActivation.Gelu, 9)]
    [InlineData(ExpertActivation.SwiGlu, 6)]
    public void A_batched_decoding_step_in_inference_equals_a_per_token_loop_in_doubles(ExpertActivation activation, int batch)
    {
        // H = 42 leaves vector tails; 2 deep and 2 simple experts; batch > 4 reaches the 4-row groups and the leftover rows
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(23 + batch);
        var options = Tiny.Options(o =>
        {
            o.HiddenSize = 14; o.ExpertMultiplier = 3; o.Activation = activation; o.DeepExperts = 2; o.TopK = 2;
        });
        using var block = new SparseMoeBlock(options);
        block.eval();
        using (torch.no_grad())
        {
            foreach (var (name, p) in block.named_parameters())
                if (name.Contains("expert", StringComparison.Ordinal)) p.normal_(0, 0.5); // reach the activations' curved parts
        }

        var x = torch.randn(batch, 1, 14); // (B, T=1, C)
        MoeBlockOutput output;
        using (torch.inference_mode()) output = block.Forward(x);

        var expected = PerTokenReference(block, x.reshape(batch, 14).to(ScalarType.Float64), options, activation, out long[] counts);
        Tiny.AssertClose(expected.reshape(batch, 1, 14), output.Hidden, atol: 1e-5, rtol: 1e-5);
        Assert.Equal(counts, output.Assigned);
        Assert.Equal(counts, output.Kept);
    }

    [Fact]
    public void Training_padding_and_autograd_are_left_to_the_sorted_dispatch()
    {
        using var scope = torch.NewDisposeScope();
        var options = Tiny.Options();
        using var block = new SparseMoeBlock(options);
        var flat = torch.randn(3, options.HiddenSize);
        Func<int, YingHub.Moe.Core.Kernels.ExpertLayer[]> none = _ => throw new InvalidOperationException("no expert should be asked for");
        using var route = block.Router.call(flat);
        Assert.Null(FewTokenDispatch.Run(flat, route, options.NumExperts, none, options.Activation, training: false, dispatchMask: null)); // autograd on
        using var inference = torch.inference_mode();
        Assert.Null(FewTokenDispatch.Run(flat, route, options.NumExperts, none, options.Activation, training: true, dispatchMask: null));
        Assert.Null(FewTokenDispatch.Run(flat, route, options.NumExperts, none, options.Activation, training: false, dispatchMask: torch.ones(3, dtype: ScalarType.Bool)));
    }

    [SimdKernelFact]
    public void Batched_cached_decoding_gives_the_logits_of_a_full_forward_on_libtorchs_path()
    {
        // the full forward runs with autograd on, so none of the kernels apply: libtorch's products, attention and dispatch
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(31);
        var options = Tiny.Options(o => { o.DeepExperts = 1; o.Activation = ExpertActivation.Gelu; o.Dropout = 0; o.AttentionDropout = 0; });
        using var model = new MoeForCausalLM(options);
        model.eval();
        var ids = torch.randint(options.VocabSize, [5, 8], dtype: ScalarType.Int64); // (B, T)
        var full = model.call(new CausalLMInput(ids, RouterStatistics: false)).Logits.detach(); // (B, T, V)

        var pieces = new List<Tensor>();
        using (torch.inference_mode())
        {
            using var cache = model.CreateCache(batch: 5);
            pieces.Add(model.call(new CausalLMInput(ids[.., ..3], Cache: cache, RouterStatistics: false)).Logits); // prompt
            for (int t = 3; t < 8; t++) pieces.Add(model.call(new CausalLMInput(ids[.., t..(t + 1)], Cache: cache, RouterStatistics: false)).Logits);
        }

        Tiny.AssertClose(full, torch.cat(pieces, 1), atol: 1e-4, rtol: 1e-4);
    }

    /// <summary>Each token through its top-k experts one at a time, in doubles, from the block's parameters.</summary>
    private static Tensor PerTokenReference(SparseMoeBlock block, Tensor flat, MoeModelOptions options, ExpertActivation activation, out long[] counts)
    {
        var logits = flat.matmul(Tiny.Param(block, "gate.weight").to(ScalarType.Float64).t()) + Tiny.Param(block, "gate.bias").to(ScalarType.Float64); // (N, E)
        var (top, idx) = logits.topk(options.TopK, dim: -1);
        var gates = top.softmax(-1);                                                                                   // (N, k)
        counts = new long[options.NumExperts];
        var rows = new List<Tensor>();
        for (int t = 0; t < flat.size(0); t++)
        {
            var y = torch.zeros(flat.size(1), dtype: ScalarType.Float64);
            for (int j = 0; j < options.TopK; j++)
            {
                int e = (int)idx[t, j].item<long>();
                counts[e]++;
                string bank = e < options.DeepExperts ? "deep_experts" : "experts";
                int local = e < options.DeepExperts ? e : e - options.DeepExperts;
                string[] layers = e < options.DeepExperts ? ["fc1", "fc2", "fc3"] : ["fc1", "fc2"];
                var h = flat[t];
                for (int l = 0; l < layers.Length; l++)
                {
                    h = h.matmul(Tiny.Param(block, $"{bank}.{layers[l]}.weight")[local].to(ScalarType.Float64)) + Tiny.Param(block, $"{bank}.{layers[l]}.bias")[local].to(ScalarType.Float64);
                    if (l < layers.Length - 1) h = Activation(h, activation);
                }

                y = y + gates[t, j] * h;
            }

            rows.Add(y);
        }

        return torch.stack(rows);
    }

    private static Tensor Activation(Tensor h, ExpertActivation activation) => activation switch
    {
        ExpertActivation.Relu => h.relu(),
        ExpertActivation.Gelu => 0.5 * h * (1 + (Math.Sqrt(2 / Math.PI) * (h + 0.044715 * h.pow(3))).tanh()),
        _ => h[..(int)(h.size(0) / 2)] / (1 + (-h[..(int)(h.size(0) / 2)]).exp()) * h[(int)(h.size(0) / 2)..],
    };
}
