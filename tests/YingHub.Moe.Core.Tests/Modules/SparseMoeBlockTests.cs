using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Modules;

public class SparseMoeBlockTests
{
    /// <summary>An FFN computed by hand from weights: the independent reference of one expert (ReLU unless told).</summary>
    private static Tensor Ffn(Tensor x, params (Tensor W, Tensor B)[] layers) => Ffn(x, h => h.relu(), layers);

    private static Tensor Ffn(Tensor x, Func<Tensor, Tensor> activation, params (Tensor W, Tensor B)[] layers)
    {
        var h = x;
        for (int i = 0; i < layers.Length; i++)
        {
            h = torch.matmul(h, layers[i].W.to(h.dtype)) + layers[i].B.to(h.dtype); // stacked FFN weights are (in, out)
            if (i < layers.Length - 1) h = activation(h);
        }

        return h;
    }

    /// <summary>The expert activations written out from their formulas (GELU: the tanh approximation; SwiGLU: silu(first half) · second half).</summary>
    private static Func<Tensor, Tensor> ActivationFormula(ExpertActivation activation) => activation switch
    {
        ExpertActivation.Relu => h => h.relu(),
        ExpertActivation.Gelu => h => 0.5 * h * (1 + (Math.Sqrt(2 / Math.PI) * (h + 0.044715 * h.pow(3))).tanh()),
        _ => h =>
        {
            var halves = h.chunk(2, dim: -1);
            return halves[0] / (1 + (-halves[0]).exp()) * halves[1];
        },
    };

    private static (Tensor W, Tensor B) Layer(nn.Module block, string prefix, int index) =>
        (Tiny.Param(block, prefix + ".weight")[index], Tiny.Param(block, prefix + ".bias")[index]);

    /// <summary>Every expert on every token, masked by the top-k gates: the dense (YingHub-v2-style) computation.</summary>
    private static Tensor DenseReference(nn.Module block, Tensor x, int experts, int deep, int k, bool shared) =>
        DenseReference(block, x, experts, deep, k, shared, h => h.relu());

    private static Tensor DenseReference(nn.Module block, Tensor x, int experts, int deep, int k, bool shared, Func<Tensor, Tensor> activation)
    {
        long n = x.shape[0] * x.shape[1], c = x.shape[2];
        var flat = x.reshape(n, c);
        var logits = torch.matmul(flat, Tiny.Param(block, "gate.weight").t().to(x.dtype)) + Tiny.Param(block, "gate.bias").to(x.dtype); // (N, E)
        var (top, idx) = logits.topk(k, dim: -1);
        var gates = torch.zeros(n, experts, dtype: x.dtype).scatter(1, idx, top.softmax(-1));                     // (N, E)
        var y = torch.zeros(n, c, dtype: x.dtype);
        for (int e = 0; e < experts; e++)
        {
            var expertOut = e < deep
                ? Ffn(flat, activation, Layer(block, "deep_experts.fc1", e), Layer(block, "deep_experts.fc2", e), Layer(block, "deep_experts.fc3", e))
                : Ffn(flat, activation, Layer(block, "experts.fc1", e - deep), Layer(block, "experts.fc2", e - deep));
            y = y + gates[.., e..(e + 1)] * expertOut;
        }

        if (shared) y = y + Ffn(flat, activation, Layer(block, "shared_expert.ffn.fc1", 0), Layer(block, "shared_expert.ffn.fc2", 0));
        return y.reshape(x.shape);
    }

    [Theory]
    [InlineData(ExpertActivation.Relu, false)]
    [InlineData(ExpertActivation.Gelu, true)]
    [InlineData(ExpertActivation.Gelu, false)]
    [InlineData(ExpertActivation.SwiGlu, true)]
    public void A_decoding_token_in_inference_equals_the_dense_reference_for_every_activation(ExpertActivation activation, bool shared)
    {
        // inference on the CPU runs the token's experts in managed code (ExpertRow); H = 42 leaves vector tails
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(17);
        var options = Tiny.Options(o =>
        {
            o.HiddenSize = 14; o.ExpertMultiplier = 3; o.DenseMultiplier = 3; o.Activation = activation;
            o.DeepExperts = 2; o.SharedExpert = shared; o.TopK = 2;
        });
        using var block = new SparseMoeBlock(options);
        block.eval();
        using (torch.no_grad())
        {
            // weights far from their small init, so pre-activations reach GELU's and SiLU's curved and saturated parts
            foreach (var (name, p) in block.named_parameters())
                if (name.Contains("expert", StringComparison.Ordinal)) p.normal_(0, 0.5);
        }

        for (int trial = 0; trial < 6; trial++) // several tokens: deep and simple experts get picked
        {
            var x = torch.randn(1, 1, 14);
            Tensor decoded;
            using (torch.inference_mode()) decoded = block.Forward(x).Hidden;
            var expected = DenseReference(block, x.to(ScalarType.Float64), options.NumExperts, options.DeepExperts, options.TopK, shared, ActivationFormula(activation));
            Tiny.AssertClose(expected, decoded, atol: 1e-5, rtol: 1e-5);
        }
    }

    [Theory]
    [InlineData(1, false, 5)]
    [InlineData(2, false, 5)]
    [InlineData(4, false, 5)]
    [InlineData(1, true, 5)]
    [InlineData(2, true, 5)]
    [InlineData(4, true, 5)]
    [InlineData(2, false, 1)] // one token: the decoding path without sort
    [InlineData(4, true, 1)]
    public void Sparse_dispatch_equals_the_dense_masked_reference_in_output_and_gradients(int k, bool shared, int tokens)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(11);
        var options = Tiny.Options(o => { o.TopK = k; o.SharedExpert = shared; o.DeepExperts = 1; });
        using var block = new SparseMoeBlock(options);
        block.eval();
        int batch = tokens == 1 ? 1 : 2;
        var x0 = torch.randn(batch, tokens, 16);
        var projection = torch.randn(batch, tokens, 16);
        var parameters = block.named_parameters().Where(p => !p.name.StartsWith("utilization")).ToArray();

        var xs = x0.clone().requires_grad_(true);
        var sparse = block.Forward(xs).Hidden;
        (sparse * projection).sum().backward();
        var sparseGrads = parameters.ToDictionary(p => p.name, p => p.parameter.grad?.clone() ?? torch.zeros_like(p.parameter));
        block.zero_grad();

        var xd = x0.clone().requires_grad_(true);
        var dense = DenseReference(block, xd, options.NumExperts, options.DeepExperts, k, shared);
        (dense * projection).sum().backward();

        Tiny.AssertClose(dense, sparse);
        Tiny.AssertClose(xd.grad!, xs.grad!);
        foreach (var (name, p) in parameters)
        {
            var expected = p.grad ?? torch.zeros_like(p);
            Tiny.AssertClose(expected, sparseGrads[name]);
        }

        // the router learns from the LM loss through the gate weights (for k = E the selection is fixed but the mix is not)
        if (k > 1) Assert.True(Tiny.Param(block, "gate.weight").grad!.abs().sum().item<float>() > 0, "the router gets a gradient");
    }

    [Fact]
    public void Capacity_drops_the_overflow_of_a_planted_routing_and_reports_it()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(3);
        var options = Tiny.Options(o => { o.NumExperts = 2; o.TopK = 1; o.CapacityFactor = 1.0; });
        using var block = new SparseMoeBlock(options);
        block.train(); // capacity binds in training only
        using (torch.no_grad())
        {
            Tiny.Param(block, "gate.weight").zero_();
            Tiny.Param(block, "gate.bias").copy_(torch.tensor(new[] { 10f, 0f })); // every token prefers expert 0
        }

        var x = torch.randn(2, 4, 16); // N = 8, capacity = ceil(1.0 * 8 * 1 / 2) = 4
        var output = block.Forward(x);
        Assert.Equal(new long[] { 8, 0 }, output.Assigned);
        Assert.Equal(new long[] { 4, 0 }, output.Kept);

        var expected = Ffn(x.reshape(8, 16), Layer(block, "experts.fc1", 0), Layer(block, "experts.fc2", 0)).reshape(2, 4, 16); // gate 1 (k = 1)
        Tiny.AssertClose(expected[.., ..2], output.Hidden[.., ..2]);   // positions 0 and 1 of both rows win
        Tiny.AssertClose(torch.zeros(2, 2, 16), output.Hidden[.., 2..]); // later positions are dropped: zero contribution
    }

    [Fact]
    public void Capacity_priority_is_earlier_positions_first_across_the_batch()
    {
        using var scope = torch.NewDisposeScope();
        // B = 2 rows of T = 2 positions, row-major tokens 0..3 = (b0,t0), (b0,t1), (b1,t0), (b1,t1); every token picks
        // expert 0 first and expert 1 second, so both experts are oversubscribed (4 assignments, capacity 2)
        var indices = torch.tensor(new long[] { 0, 1, 0, 1, 0, 1, 0, 1 }, 4, 2);
        var weights = torch.tensor(new[] { .6f, .4f, .7f, .3f, .8f, .2f, .9f, .1f }, 4, 2);
        using var plan = TokenDispatch.Plan(indices, weights, experts: 2, capacity: 2, batch: 2);
        // position 0 of both rows wins everywhere (tokens 0 and 2), position 1 is dropped, whatever its choice rank
        Assert.Equal(new long[] { 0, 2, 0, 2 }, plan.TokenIndex.data<long>().ToArray());
        Assert.Equal(new[] { .6f, .8f, .4f, .2f }, plan.Weights.data<float>().ToArray());
        Assert.Equal(new long[] { 4, 4 }, plan.Assigned);
        Assert.Equal(new long[] { 2, 2 }, plan.Kept);
    }

    [Fact]
    public void With_capacity_later_tokens_never_change_earlier_outputs()
    {
        using var scope = torch.NewDisposeScope();
        var options = Tiny.Options(o => { o.NumExperts = 4; o.TopK = 2; o.CapacityFactor = 0.75; });
        for (int seed = 0; seed < 10; seed++)
        {
            torch.manual_seed(seed);
            using var block = new SparseMoeBlock(options);
            block.train();
            var x = torch.randn(2, 8, 16);
            var baseline = block.Forward(x).Hidden;
            for (int t = 0; t < 7; t++)
            {
                var changed = x.clone();
                changed[.., (t + 1)..] = torch.randn(2, 7 - t, 16);
                Tiny.AssertClose(baseline[.., ..(t + 1)], block.Forward(changed).Hidden[.., ..(t + 1)], atol: 1e-6);
            }
        }
    }

    [Fact]
    public void Switch_style_weights_give_the_router_a_gradient_at_k_1()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(5);
        foreach (bool normalize in new[] { true, false })
        {
            using var block = new SparseMoeBlock(Tiny.Options(o => { o.TopK = 1; o.NormalizeTopKWeights = normalize; }));
            block.Forward(torch.randn(2, 5, 16)).Hidden.sum().backward();
            float grad = Tiny.Param(block, "gate.weight").grad?.abs().sum().item<float>() ?? 0;
            if (normalize) Assert.Equal(0f, grad); // a softmax over one logit is constant: documented on the option
            else Assert.True(grad > 0);
        }
    }

    [Fact]
    public void Padded_slices_read_token_0_with_weight_0_and_keep_the_assignments()
    {
        using var scope = torch.NewDisposeScope();
        var indices = torch.tensor(new long[] { 2, 0, 1, 0, 2 }, 5, 1);
        var weights = torch.tensor(new float[] { 0.5f, 0.25f, 0.125f, 2f, 4f }, 5, 1);
        using var plan = TokenDispatch.Plan(indices, weights, experts: 4, capacity: null, batch: 1); // tokens [1, 3 | 2 | 0, 4 | -]
        using var padded = TokenDispatch.PadSlices(plan, 4);
        Assert.Equal(new long[] { 1, 3, 0, 0, 2, 0, 0, 0, 0, 4, 0, 0 }, padded.TokenIndex.data<long>().ToArray());
        Assert.Equal(new float[] { 0.25f, 2f, 0, 0, 0.125f, 0, 0, 0, 0.5f, 4f, 0, 0 }, padded.Weights.data<float>().ToArray());
        Assert.Equal(new long[] { 4, 4, 4, 0 }, padded.Kept);                    // an expert without tokens stays empty
        Assert.Equal(new long[] { 2, 1, 2, 0 }, padded.Assigned);
    }

    [Fact]
    public void Under_bf16_autocast_the_padded_dispatch_equals_the_dense_reference_in_output_and_gradients()
    {
        // under autocast on CPU each expert's slice is padded to a multiple of 64 rows: here almost every row is padding
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(23);
        var options = Tiny.Options(o => { o.TopK = 2; o.DeepExperts = 1; });
        using var block = new SparseMoeBlock(options);
        block.eval();
        var x0 = torch.randn(2, 5, 16);
        var projection = torch.randn(2, 5, 16);
        var parameters = block.named_parameters().Where(p => !p.name.StartsWith("utilization")).ToArray();

        var xs = x0.clone().requires_grad_(true);
        Tensor sparse;
        using (Core.Precision.Autocast.Enable(ScalarType.BFloat16)) sparse = block.Forward(xs).Hidden;
        Assert.Equal(ScalarType.Float32, sparse.dtype);                         // combined in the gate weights' float32
        (sparse * projection).sum().backward();
        var sparseGrads = parameters.ToDictionary(p => p.name, p => p.parameter.grad?.clone() ?? torch.zeros_like(p.parameter));
        block.zero_grad();

        var xd = x0.clone().requires_grad_(true);
        var dense = DenseReference(block, xd, options.NumExperts, options.DeepExperts, 2, shared: false); // float32
        (dense * projection).sum().backward();

        // bfloat16 products: about 3 significant digits (a padding row with any weight but 0 would add a whole expert output)
        Tiny.AssertClose(dense, sparse, atol: 3e-2, rtol: 3e-2);
        Tiny.AssertClose(xd.grad!, xs.grad!, atol: 3e-2, rtol: 3e-2);
        foreach (var (name, p) in parameters)
            Tiny.AssertClose(p.grad ?? torch.zeros_like(p), sparseGrads[name], atol: 3e-2, rtol: 3e-2);
    }

    [Fact]
    public void Dropless_plan_keeps_every_assignment_sorted_by_expert()
    {
        using var scope = torch.NewDisposeScope();
        var indices = torch.tensor(new long[] { 2, 0, 1, 0, 2 }, 5, 1);
        var weights = torch.ones(5, 1);
        using var plan = TokenDispatch.Plan(indices, weights, experts: 4, capacity: null, batch: 1);
        Assert.Equal(new long[] { 1, 3, 2, 0, 4 }, plan.TokenIndex.data<long>().ToArray());
        Assert.Equal(new long[] { 2, 1, 2, 0 }, plan.Kept);
    }
}
