using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Modules;

public class RoutingReplayTests
{
    private const int Experts = 4, TopK = 2;

    /// <summary>Two rows of six tokens; with <paramref name="padded"/> the first row's first two are left padding.</summary>
    private static (Tensor Ids, Tensor? Mask) Batch(bool padded)
    {
        var ids = torch.tensor(new long[] { 0, 0, 3, 7, 1, 12, 5, 9, 2, 14, 6, 4 }, 2, 6);
        var mask = padded ? torch.tensor(new long[] { 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 }, 2, 6) : null;
        return (ids, mask);
    }

    private static List<Tensor> Recorded(CausalLMOutput output) => output.Routing!.Select(r => r.SelectedExperts).ToList();

    /// <summary>Other experts than <paramref name="experts"/> for every token: a shift by one keeps a row distinct and never maps a set onto itself (k &lt; E).</summary>
    private static List<Tensor> Shifted(IEnumerable<Tensor> experts) => experts.Select(e => (e + 1).remainder(Experts)).ToList();

    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    /// <summary>The rows (N, …) of the real tokens.</summary>
    private static Tensor RealRows(Tensor perToken, Tensor? mask) =>
        mask is null ? perToken : perToken.index_select(0, mask.reshape(-1).nonzero().squeeze(1));

    /// <summary>Sorted experts of the real tokens: their sets, comparable whatever the order.</summary>
    private static Tensor RealSets(Tensor experts, Tensor? mask) => RealRows(experts, mask).sort(-1).Values;

    [Theory]
    [InlineData(true, false, RouterKind.TopK)]
    [InlineData(false, false, RouterKind.TopK)]
    [InlineData(true, true, RouterKind.NoisyTopK)]
    [InlineData(false, true, RouterKind.NoisyTopK)]
    public void Replaying_the_models_own_choice_in_eval_gives_bit_identical_logits(bool normalize, bool padded, RouterKind router)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(3);
        using var model = new MoeForCausalLM(Tiny.Options(o => { o.NormalizeTopKWeights = normalize; o.Router = router; }));
        model.eval();
        var (ids, mask) = Batch(padded);
        var natural = model.call(new CausalLMInput(ids, AttentionMask: mask, OutputRouterLogits: true));
        var replayed = model.call(new CausalLMInput(ids, AttentionMask: mask, OutputRouterLogits: true, RoutingReplay: Recorded(natural)));
        Assert.True(Same(natural.Logits, replayed.Logits), "same experts, same logits, bit for bit");
        for (int m = 0; m < natural.Routing!.Count; m++) // padding's rows are not replayed (it routes nowhere)
            Assert.True(Same(RealRows(natural.Routing[m].Weights, mask), RealRows(replayed.Routing![m].Weights, mask)), $"layer {m} gate weights");

        var forced = model.call(new CausalLMInput(ids, AttentionMask: mask, RoutingReplay: Shifted(Recorded(natural)))).Logits;
        Assert.False(Same(natural.Logits, forced), "other experts change the output");
    }

    /// <summary>
    /// The naive reference: per token, the gate weights from the router's logits at the forced experts (a softmax over
    /// those k logits when renormalising, else the full softmax read there) times those experts' FFNs from their weights.
    /// </summary>
    private static Tensor Reference(SparseMoeBlock block, Tensor x, Tensor forced, bool normalize)
    {
        long n = x.size(0) * x.size(1), c = x.size(2);
        var flat = x.reshape(n, c);
        var logits = torch.matmul(flat, Tiny.Param(block, "gate.weight").t()) + Tiny.Param(block, "gate.bias"); // (N, E)
        Tensor W(string name) => Tiny.Param(block, $"experts.{name}.weight");
        Tensor B(string name) => Tiny.Param(block, $"experts.{name}.bias");
        var rows = new List<Tensor>();
        for (long i = 0; i < n; i++)
        {
            long[] chosen = forced[i].data<long>().ToArray();
            var picked = torch.stack(chosen.Select(e => logits[i, e]).ToArray());            // (k)
            var gates = normalize ? picked.exp() / picked.exp().sum() : picked.exp() / logits[i].exp().sum();
            var y = torch.zeros(c);
            for (int j = 0; j < chosen.Length; j++)
            {
                long e = chosen[j];
                var h = (torch.matmul(flat[i], W("fc1")[e]) + B("fc1")[e]).relu();
                y = y + gates[j] * (torch.matmul(h, W("fc2")[e]) + B("fc2")[e]);
            }

            rows.Add(y);
        }

        return torch.stack(rows).reshape(x.shape);
    }

    [Theory]
    [InlineData(true, false, 5)]
    [InlineData(false, false, 5)]
    [InlineData(true, true, 5)]  // training with router noise: replay uses no noise
    [InlineData(false, true, 1)] // one token: the decoding path
    [InlineData(true, false, 1)]
    public void Forced_experts_equal_the_naive_reference_in_output_and_router_gradient(bool normalize, bool noisyTraining, int tokens)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(5);
        var options = Tiny.Options(o => { o.NormalizeTopKWeights = normalize; o.Router = noisyTraining ? RouterKind.NoisyTopK : RouterKind.TopK; });
        using var block = new SparseMoeBlock(options);
        if (noisyTraining) block.train(); else block.eval();
        int batch = tokens == 1 ? 1 : 2;
        var x = torch.randn(batch, tokens, 16);
        var projection = torch.randn(batch, tokens, 16);
        Tensor natural;
        using (torch.no_grad()) natural = block.Forward(x, new MoeBlockRequest(Routing: true), 0).Routing!.SelectedExperts;
        var forced = Shifted([natural])[0];                                                     // (N, k)
        var gate = Tiny.Param(block, "gate.weight");

        var output = block.Forward(x, new MoeBlockRequest(Routing: true, ForcedExperts: forced), 0);
        (output.Hidden * projection).sum().backward();
        var gateGrad = gate.grad!.clone();
        block.zero_grad();
        var expected = Reference(block, x, forced, normalize);
        (expected * projection).sum().backward();

        Assert.True(Same(forced, output.Routing!.SelectedExperts), "the forced experts are the selected ones");
        Tiny.AssertClose(expected, output.Hidden);
        Assert.True(gateGrad.abs().sum().item<float>() > 0, "the router gets a gradient under replay");
        Tiny.AssertClose(gate.grad!, gateGrad);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Training_with_router_noise_replays_the_recorded_experts(bool padded)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(8);
        using var model = new MoeForCausalLM(Tiny.Options(o => o.Router = RouterKind.NoisyTopK));
        model.train();
        var (ids, mask) = Batch(padded);
        var rollout = Recorded(model.call(new CausalLMInput(ids, AttentionMask: mask, OutputRouterLogits: true)));
        var fresh = Recorded(model.call(new CausalLMInput(ids, AttentionMask: mask, OutputRouterLogits: true)));
        var replayed = model.call(new CausalLMInput(ids, AttentionMask: mask, OutputRouterLogits: true, RoutingReplay: rollout));
        Assert.Contains(Enumerable.Range(0, rollout.Count), m => !Same(RealSets(rollout[m], mask), RealSets(fresh[m], mask))); // noise alone moves some tokens
        for (int m = 0; m < rollout.Count; m++)
            Assert.True(Same(RealSets(rollout[m], mask), RealSets(replayed.Routing![m].SelectedExperts, mask)), $"MoE layer {m} replays the rollout");
    }

    [Theory]
    [InlineData(false, 6)] // 12 tokens × 2 / 4 experts: capacity 6
    [InlineData(true, 5)]  // 10 real tokens: capacity 5, padding takes none
    public void Forced_assignments_are_subject_to_capacity(bool padded, long capacity)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(9);
        using var model = new MoeForCausalLM(Tiny.Options(o => o.CapacityFactor = 1.0));
        model.train();
        var (ids, mask) = Batch(padded);
        var everyTokenTo01 = torch.tensor(new long[] { 0, 1 }).expand(12, 2).contiguous();
        var output = model.call(new CausalLMInput(ids, AttentionMask: mask, RoutingReplay: [everyTokenTo01, everyTokenTo01]));
        long real = 2 * capacity;
        foreach (var stats in output.RouterStats)
        {
            Assert.Equal(new[] { real, real, 0, 0 }, stats.TokensPerExpert.data<long>().ToArray());
            Assert.Equal(new[] { real - capacity, real - capacity, 0, 0 }, stats.Dropped.data<long>().ToArray());
        }
    }

    [Theory]
    [InlineData(1)] // decoding one token: the single-token path
    [InlineData(2)]
    public void Kv_cache_decoding_replays_the_new_positions(int batch)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(10);
        using var model = new MoeForCausalLM(Tiny.Options(o => o.Positions = PositionEncoding.Rope));
        model.eval();
        using var noGrad = torch.no_grad();
        var ids = Batch(padded: false).Ids.narrow(0, 0, batch);                                       // (B, 6)
        var forced = Shifted(Recorded(model.call(new CausalLMInput(ids, OutputRouterLogits: true)))); // per layer (B·6, k)
        var full = model.call(new CausalLMInput(ids, RoutingReplay: forced)).Logits;                  // (B, 6, V)
        Tensor Positions(Tensor e, long start, long length) => e.view(batch, 6, TopK).narrow(1, start, length).reshape(-1, TopK);

        using var cache = model.CreateCache(batch);
        var prefill = model.call(new CausalLMInput(ids.narrow(1, 0, 5), Cache: cache, RoutingReplay: forced.Select(e => Positions(e, 0, 5)).ToList())).Logits;
        var step = model.call(new CausalLMInput(ids.narrow(1, 5, 1), Cache: cache, RoutingReplay: forced.Select(e => Positions(e, 5, 1)).ToList())).Logits;
        Tiny.AssertClose(full.narrow(1, 0, 5), prefill);
        Tiny.AssertClose(full.narrow(1, 5, 1), step);
    }

    [Fact]
    public void Padding_rows_of_a_replay_are_ignored()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(12);
        using var model = new MoeForCausalLM(Tiny.Options());
        model.eval();
        var (ids, mask) = Batch(padded: true);
        var recorded = Recorded(model.call(new CausalLMInput(ids, AttentionMask: mask, OutputRouterLogits: true)));
        var pads = mask!.reshape(-1).eq(0).unsqueeze(1);                                        // (N, 1)
        var garbage = recorded.Select(e => e.masked_fill(pads, -1)).ToList();                   // out of range, at padding only
        var expected = model.call(new CausalLMInput(ids, AttentionMask: mask, RoutingReplay: recorded)).Logits;
        var replayed = model.call(new CausalLMInput(ids, AttentionMask: mask, OutputRouterLogits: true, RoutingReplay: garbage));
        Assert.True(Same(expected, replayed.Logits));
        // what a replayed forward reports is a valid routing everywhere (padding rows too): it replays even without the mask
        model.call(new CausalLMInput(ids, RoutingReplay: Recorded(replayed))).Dispose();
    }

    [Fact]
    public void A_replay_that_does_not_fit_is_refused_naming_the_layer_and_the_problem()
    {
        using var scope = torch.NewDisposeScope();
        using var model = new MoeForCausalLM(Tiny.Options(o => { o.NumLayers = 4; o.MoeEvery = 2; })); // MoE layers 1 and 3
        var (ids, mask) = Batch(padded: true);
        var good = torch.tensor(new long[] { 0, 1 }).expand(12, 2).contiguous();
        string Refused(Tensor second, Tensor? attentionMask = null) => Assert.Throws<ArgumentException>(() =>
            model.call(new CausalLMInput(ids, AttentionMask: attentionMask, RoutingReplay: [good, second]))).Message;
        Tensor With(long token, long first, long second)
        {
            var t = good.clone();
            t[token, 0] = first;
            t[token, 1] = second;
            return t;
        }

        Assert.Contains("has 1 tensors; the model has 2 MoE layers", Assert.Throws<ArgumentException>(() => model.call(new CausalLMInput(ids, RoutingReplay: [good]))).Message);
        Assert.Contains("RoutingReplay[1] (layer 3) must be (B·T = 12, k = 2); got shape [12, 3]", Refused(torch.zeros(12, 3, dtype: ScalarType.Int64)));
        Assert.Contains("got shape [11, 2]", Refused(good.narrow(0, 0, 11)));
        Assert.Contains("RoutingReplay[1] (layer 3) must be int64; got Int32", Refused(good.to(ScalarType.Int32)));
        Assert.Contains("RoutingReplay[1] (layer 3): token 7 has experts [4, 1]", Refused(With(7, 4, 1)));
        Assert.Contains("token 3 has experts [0, -1]", Refused(With(3, 0, -1)));
        Assert.Contains("token 11 has experts [2, 2]; each must be in [0, 4) and distinct", Refused(With(11, 2, 2)));
        Assert.Contains("token 1 has experts [5, 5]", Refused(With(1, 5, 5)));               // without a mask token 1 is real
        model.call(new CausalLMInput(ids, AttentionMask: mask, RoutingReplay: [good, With(1, 5, 5)])).Dispose(); // with it, padding
    }

    [Fact]
    public void A_replayed_training_step_leaks_no_tensors()
    {
        torch.manual_seed(14);
        using var model = new MoeForCausalLM(Tiny.Options(o => { o.Router = RouterKind.NoisyTopK; o.CapacityFactor = 1.0; }));
        model.train();
        long afterWarmup = 0;
        for (int step = 0; step < 20; step++)
        {
            using (torch.NewDisposeScope())
            {
                var (ids, mask) = Batch(padded: true);
                var replay = Recorded(model.call(new CausalLMInput(ids, AttentionMask: mask, OutputRouterLogits: true)));
                var output = model.call(new CausalLMInput(ids, ids, AttentionMask: mask, OutputRouterLogits: true, RoutingReplay: replay));
                output.Loss!.backward();
                RoutingReplay.ChangeRate(replay[0], output.Routing![0].SelectedExperts, mask).Dispose();
                RoutingReplay.SelectRows(replay[0], 2, 6, torch.tensor(new long[] { 1 })).Dispose();
            }

            model.zero_grad();
            if (step == 4) afterWarmup = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        }

        Assert.Equal(afterWarmup, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void Sequence_log_probs_pass_the_replay_through()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(13);
        using var model = new MoeForCausalLM(Tiny.Options());
        model.eval();
        var (ids, mask) = Batch(padded: true);
        var forced = Shifted(Recorded(model.call(new CausalLMInput(ids, AttentionMask: mask, OutputRouterLogits: true))));
        var logits = model.call(new CausalLMInput(ids, AttentionMask: mask, RoutingReplay: forced)).Logits;  // (B, T, V)
        var expected = logits.narrow(1, 0, 5).log_softmax(-1).gather(2, ids.narrow(1, 1, 5).unsqueeze(2)).squeeze(2); // (B, T - 1)
        var (replayed, counted) = model.SequenceLogProbs(ids, mask, forced);
        var (natural, _) = model.SequenceLogProbs(ids, mask);
        Tiny.AssertClose(expected * counted, replayed);
        Assert.False(Same(natural, replayed));
    }

    [Fact]
    public void Change_rate_is_the_share_of_counted_tokens_whose_expert_set_differs()
    {
        using var scope = torch.NewDisposeScope();
        var a = torch.tensor(new long[] { 0, 1, 1, 2, 2, 3, 3, 0 }, 4, 2);
        var reordered = torch.tensor(new long[] { 1, 0, 2, 1, 3, 2, 0, 3 }, 4, 2);
        var lastDiffers = torch.tensor(new long[] { 1, 0, 1, 2, 3, 2, 3, 1 }, 4, 2); // {3, 1} vs {3, 0}: one expert shared is still a change
        float Rate(Tensor b, Tensor? m = null)
        {
            var r = RoutingReplay.ChangeRate(a, b, m);
            Assert.Equal((ScalarType.Float32, 0L), (r.dtype, r.dim()));
            return r.item<float>();
        }

        Assert.Equal(0f, Rate(reordered));
        Assert.Equal(0.25f, Rate(lastDiffers));
        Assert.Equal(0f, Rate(lastDiffers, torch.tensor(new[] { true, true, true, false })));
        Assert.Equal(0.5f, Rate(lastDiffers, torch.tensor(new long[] { 0, 0, 1, 1 }, 2, 2))); // a (B, T) mask, integer
        Assert.Equal(1f / 3, Rate(lastDiffers, torch.tensor(new[] { true, false, true, true })));
        Assert.Equal(0f, Rate(lastDiffers, torch.zeros(4, dtype: ScalarType.Bool)));          // nothing counted: 0, not NaN
        Assert.Throws<ArgumentException>(() => RoutingReplay.ChangeRate(a, a.narrow(0, 0, 3)));
        Assert.Throws<ArgumentException>(() => RoutingReplay.ChangeRate(a, a, torch.ones(3)));
    }

    [Fact]
    public void Select_rows_takes_whole_sequences_in_the_given_order()
    {
        using var scope = torch.NewDisposeScope();
        var experts = torch.arange(12L).view(6, 2);                                             // B = 3, T = 2, k = 2
        var picked = RoutingReplay.SelectRows(experts, batch: 3, time: 2, torch.tensor(new long[] { 2, 0 }));
        Assert.Equal(new long[] { 4, 2 }, picked.shape);
        Assert.Equal(new long[] { 8, 9, 10, 11, 0, 1, 2, 3 }, picked.data<long>().ToArray());
        Assert.Throws<ArgumentException>(() => RoutingReplay.SelectRows(experts, batch: 2, time: 2, torch.tensor(new long[] { 0 })));
        Assert.Throws<ArgumentException>(() => RoutingReplay.SelectRows(experts, batch: 3, time: 2, torch.tensor(new[] { 0 })));
    }
}
