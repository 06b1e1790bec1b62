using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Modules;

public class MoeForCausalLMTests
{
    private static Tensor Ids(params long[] ids) => torch.tensor(ids, 1, ids.Length);

    [Theory]
    [InlineData(PositionEncoding.Learned)]
    [InlineData(PositionEncoding.Rope)]
    public void Changing_token_t_plus_1_never_changes_logits_at_positions_up_to_t(PositionEncoding positions)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(5);
        using var model = new MoeForCausalLM(Tiny.Options(o => o.Positions = positions));
        model.eval();
        long[] ids = [1, 4, 2, 8, 5, 7, 3, 0];
        var baseline = model.call(new CausalLMInput(Ids(ids))).Logits;
        for (int t = 0; t < ids.Length - 1; t++)
        {
            long[] changed = (long[])ids.Clone();
            changed[t + 1] = (changed[t + 1] + 9) % 19;
            var logits = model.call(new CausalLMInput(Ids(changed))).Logits;
            Tiny.AssertClose(baseline[.., ..(t + 1)], logits[.., ..(t + 1)], atol: 1e-6);
            Assert.False(baseline[.., t + 1].allclose(logits[.., t + 1]), $"position {t + 1} should see its own token");
        }
    }

    [Theory]
    [InlineData(PositionEncoding.Learned, false)]
    [InlineData(PositionEncoding.Rope, false)]
    [InlineData(PositionEncoding.Rope, true)]
    public void Kv_cache_decoding_gives_the_logits_of_a_full_forward(PositionEncoding positions, bool shared)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(9);
        using var model = new MoeForCausalLM(Tiny.Options(o => { o.Positions = positions; o.SharedExpert = shared; o.MoeEvery = 2; }));
        model.eval();
        var ids = torch.randint(0, 19, [2, 12]);
        using var _ = torch.no_grad();
        var full = model.call(new CausalLMInput(ids)).Logits; // (2, 12, V)

        using var cache = model.CreateCache(batch: 2);
        var pieces = new List<Tensor>();
        // prefill 3, then a chunk of 4 (queries after cached keys need the bottom-right causal mask), then one by one
        foreach (var (start, length) in new[] { (0, 3), (3, 4), (7, 1), (8, 1), (9, 1), (10, 1), (11, 1) })
            pieces.Add(model.call(new CausalLMInput(ids[.., start..(start + length)], Cache: cache)).Logits);
        Assert.Equal(12, cache.Length);
        Tiny.AssertClose(full, torch.cat(pieces, 1), atol: 1e-5);

        var ex = Assert.Throws<ArgumentException>(() => model.call(new CausalLMInput(ids[.., ..1], Cache: cache)));
        Assert.Contains("context length 12", ex.Message);
    }

    [Fact]
    public void Router_noise_only_in_training_and_the_same_seed_gives_the_same_output()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(1);
        using var model = new MoeForCausalLM(Tiny.Options(o => o.Router = RouterKind.NoisyTopK));
        var ids = torch.randint(0, 19, [2, 10]);

        model.eval();
        var a = model.call(new CausalLMInput(ids)).Logits;
        var b = model.call(new CausalLMInput(ids)).Logits;
        Tiny.AssertClose(a, b, atol: 0);

        model.train();
        torch.manual_seed(42);
        var t1 = model.call(new CausalLMInput(ids)).Logits;
        torch.manual_seed(42);
        var t2 = model.call(new CausalLMInput(ids)).Logits;
        torch.manual_seed(43);
        var t3 = model.call(new CausalLMInput(ids)).Logits;
        Tiny.AssertClose(t1, t2, atol: 0);
        Assert.False(t1.allclose(t3), "different noise should route differently");
        Assert.False(t1.allclose(a), "training-mode noise should change the routing");
    }

    [Fact]
    public void DropPath_is_identity_in_eval_and_drops_or_rescales_whole_samples_in_training()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(2);
        using var dropPath = new DropPath(0.5);
        var x = torch.randn(64, 3, 4);
        dropPath.eval();
        Tiny.AssertClose(x, dropPath.call(x), atol: 0);

        dropPath.train();
        var y = dropPath.call(x);
        int dropped = 0;
        for (int i = 0; i < 64; i++)
        {
            if (y[i].abs().sum().item<float>() == 0) dropped++;
            else Tiny.AssertClose(x[i] * 2, y[i]); // survivors scaled by 1 / (1 - p)
        }

        Assert.InRange(dropped, 16, 48); // Binomial(64, 0.5): far outside this range has probability < 1e-4
    }

    [Fact]
    public void Losses_are_reported_separately_and_the_total_is_their_weighted_sum()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(4);
        var options = Tiny.Options(o => { o.LoadBalancingCoef = 0.1; o.ZLossCoef = 0.01; o.UtilizationKlCoef = 0.5; o.LabelSmoothing = 0.1; });
        using var model = new MoeForCausalLM(options);
        var ids = torch.randint(0, 19, [2, 8]);
        var labels = torch.randint(0, 19, [2, 8]);
        var output = model.call(new CausalLMInput(ids, labels));

        labels[0, 3] = torch.tensor(-100L); // an ignored position
        output = model.call(new CausalLMInput(ids, labels));
        var expectedLm = nn.functional.cross_entropy(output.Logits.reshape(16, 19), labels.reshape(16), ignore_index: -100, label_smoothing: 0.1);
        Tiny.AssertClose(expectedLm, output.LmLoss!);
        var total = output.LmLoss! + 0.1 * output.LoadBalancingLoss + 0.01 * output.ZLoss + 0.5 * output.UtilizationKlLoss;
        Tiny.AssertClose(total, output.Loss!);
        Assert.Equal(2, output.RouterStats.Count);
        Assert.All(output.RouterStats, s => Assert.Equal(15 * 2, s.TokensPerExpert.sum().item<long>())); // the ignored position counts nowhere

        output.Loss!.backward();
        var router = Tiny.Param(model, "layers.0.block_sparse_moe.gate.weight");
        Assert.True(router.grad!.abs().sum().item<float>() > 0, "gradients reach the router");
    }

    [Fact]
    public void Parameter_counts_match_the_closed_form()
    {
        var o = Tiny.Options(o => { o.MoeEvery = 2; o.SharedExpert = true; });
        using var model = new MoeForCausalLM(o);
        long c = o.HiddenSize, v = o.VocabSize, t = o.ContextLength, e = o.NumExperts, h = o.ExpertMultiplier * c, hd = o.DenseMultiplier * c;
        long ffn(long hidden) => c * hidden + hidden + hidden * c + c;
        long attention = 3 * c * c + 3 * c + c * c + c;
        long norms = 2 * (2 * c);
        long denseLayer = norms + attention + ffn(hd);
        long expert = ffn(h);
        long moeLayer = norms + attention + (e * c + e) + e * expert + ffn(hd);
        long total = v * c + t * c + denseLayer + moeLayer + 2 * c + v * c;
        Assert.Equal(total, model.ParameterCount);
        Assert.Equal(total - (e - o.TopK) * expert, model.ActiveParameterCount);
    }

    [Fact]
    public void Tied_embeddings_are_one_parameter_the_optimizer_updates_once()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(14);
        using var model = new MoeForCausalLM(Tiny.Options(o => o.TieWordEmbeddings = true));
        Assert.DoesNotContain(model.named_parameters(), p => p.name.StartsWith("lm_head"));
        using var untied = new MoeForCausalLM(Tiny.Options());
        Assert.Equal(untied.ParameterCount - 19 * 16, model.ParameterCount);

        // the head reads the embedding: logits = norm(h) · Eᵀ, so changing E changes the logits of every position
        var ids = torch.randint(0, 19, [1, 6]);
        var embed = Tiny.Param(model, "embed_tokens.weight");
        var before = embed.detach().clone();
        using var optimizer = torch.optim.AdamW(model.parameters(), lr: 1e-2, weight_decay: 0);
        model.call(new CausalLMInput(ids, ids)).Loss!.backward();
        optimizer.step();
        double maxStep = (embed.detach() - before).abs().max().item<float>();
        Assert.InRange(maxStep, 1e-3, 1.0001e-2); // Adam's first step moves each element by at most lr: one update, not two
    }

    [Fact]
    public void A_model_built_inside_a_dispose_scope_survives_it()
    {
        MoeForCausalLM model;
        using (torch.NewDisposeScope()) model = new MoeForCausalLM(Tiny.Options(o => { o.Router = RouterKind.NoisyTopK; o.Norm = NormKind.RmsNorm; o.Positions = PositionEncoding.Rope; }));
        using (model)
        using (torch.NewDisposeScope())
        {
            KvCache cache;
            using (torch.NewDisposeScope()) cache = model.CreateCache();
            using (cache)
            using (torch.no_grad())
            {
                var logits = model.call(new CausalLMInput(Ids(1, 2, 3), Cache: cache)).Logits;
                Assert.Equal(new long[] { 1, 3, 19 }, logits.shape);
            }
        }
    }

    [Fact]
    public void Bad_inputs_get_argument_exceptions_naming_the_value()
    {
        using var scope = torch.NewDisposeScope();
        using var model = new MoeForCausalLM(Tiny.Options());
        var ex = Assert.Throws<ArgumentException>(() => model.call(new CausalLMInput(Ids(1, 2, 19))));
        Assert.Contains("Token id 19", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => model.call(new CausalLMInput(Ids(1, -3, 2))));
        Assert.Contains("Token id -3", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => model.call(new CausalLMInput(torch.zeros(1, 13, dtype: ScalarType.Int64))));
        Assert.Contains("Sequence length 13 exceeds the context length 12", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => model.call(new CausalLMInput(torch.zeros(3, dtype: ScalarType.Int64))));
        Assert.Contains("(B, T)", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => model.call(new CausalLMInput(Ids(1, 2, 3), Ids(1, 19, -100))));
        Assert.Contains("Label 19 is outside the vocabulary", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => model.call(new CausalLMInput(Ids(1, 2, 3), torch.zeros(1, 3, dtype: ScalarType.Int32))));
        Assert.Contains("Labels must be int64", ex.Message);
        using (var cache = model.CreateCache())
            Assert.Contains("under torch.no_grad()", Assert.Throws<ArgumentException>(() => model.call(new CausalLMInput(Ids(1, 2), Cache: cache))).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => model.TopK = 5);
        model.TopK = 4;
        Assert.Equal(4, model.TopK);
    }

    [Fact]
    public void Live_tensor_count_stays_flat_over_300_training_steps()
    {
        torch.manual_seed(6);
        using var model = new MoeForCausalLM(Tiny.Options(o => { o.Router = RouterKind.NoisyTopK; o.Dropout = 0.1; o.StochasticDepth = 0.1; }));
        using var optimizer = torch.optim.AdamW(model.parameters(), lr: 1e-3);
        long after50 = 0;
        for (int step = 0; step < 300; step++)
        {
            using (torch.NewDisposeScope())
            {
                var ids = torch.randint(0, 19, [4, 12]);
                var output = model.call(new CausalLMInput(ids, ids));
                optimizer.zero_grad();
                output.Loss!.backward();
                optimizer.step();
            }

            if (step == 49) after50 = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        }

        Assert.Equal(after50, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }
}

public class KvCacheTests
{
    [Fact]
    public void A_cache_from_a_model_of_another_shape_is_rejected_by_name()
    {
        using var small = new MoeForCausalLM(Tiny.Options());
        using var deeper = new MoeForCausalLM(Tiny.Options(o => o.NumLayers = 3));
        using var cache = deeper.CreateCache();
        using var _ = torch.no_grad();
        var ex = Assert.Throws<ArgumentException>(() => small.call(new CausalLMInput(torch.zeros(1, 2, dtype: ScalarType.Int64), Cache: cache)));
        Assert.Contains("made for 3 layers", ex.Message);
    }
}
