using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Modules;

/// <summary>Attention masks for left-padded batches: the padded rows against the same rows alone.</summary>
public class PaddingTests
{
    // row 0: three pads then five real tokens; row 1: eight real tokens
    private static readonly long[] Short = [4, 2, 8, 5, 7];
    private static readonly long[] Long = [1, 4, 2, 8, 5, 7, 3, 0];

    private static (Tensor Ids, Tensor Mask) LeftPadded(long padId)
    {
        long[] values = [padId, padId, padId, .. Short, .. Long];
        var ids = torch.tensor(values, 2, 8);
        var mask = torch.tensor(new long[] { 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 }, 2, 8);
        return (ids, mask);
    }

    private static Tensor Alone(MoeForCausalLM model, long[] row) =>
        model.call(new CausalLMInput(torch.tensor(row, 1, row.Length), RouterStatistics: false)).Logits[0]; // (T, V)

    [Theory]
    [InlineData(PositionEncoding.Learned, false)]
    [InlineData(PositionEncoding.Rope, false)]
    [InlineData(PositionEncoding.Rope, true)]
    public void A_left_padded_row_gives_the_logits_of_the_same_row_alone(PositionEncoding positions, bool sharedAndDense)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(31);
        using var model = new MoeForCausalLM(Tiny.Options(o => { o.Positions = positions; o.SharedExpert = sharedAndDense; o.MoeEvery = sharedAndDense ? 2 : 1; }));
        model.eval();
        using var noGrad = torch.no_grad();
        var (ids, mask) = LeftPadded(padId: 11);
        var logits = model.call(new CausalLMInput(ids, AttentionMask: mask)).Logits; // (2, 8, V)
        Tiny.AssertClose(Alone(model, Short), logits[0, 3..], atol: 1e-5);
        Tiny.AssertClose(Alone(model, Long), logits[1], atol: 1e-5);
        Assert.All(Tiny.Values(logits), v => Assert.True(double.IsFinite(v)));

        // the pad ids do not matter at real positions (a pad position's own logits follow its token), and a mask of ones is the unpadded batch
        var (other, _) = LeftPadded(padId: 3);
        var again = model.call(new CausalLMInput(other, AttentionMask: mask)).Logits;
        Tiny.AssertClose(logits[0, 3..], again[0, 3..], atol: 1e-6);
        Tiny.AssertClose(logits[1], again[1], atol: 1e-6);
        var full = torch.tensor(Long, 1, 8);
        Tiny.AssertClose(model.call(new CausalLMInput(full)).Logits, model.call(new CausalLMInput(full, AttentionMask: torch.ones(1, 8, dtype: ScalarType.Bool))).Logits, atol: 0);
    }

    [Theory]
    [InlineData(PositionEncoding.Learned)]
    [InlineData(PositionEncoding.Rope)]
    public void Kv_cache_decoding_after_a_padded_prompt_gives_each_row_its_own_logits(PositionEncoding positions)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(32);
        using var model = new MoeForCausalLM(Tiny.Options(o => { o.Positions = positions; o.ContextLength = 12; }));
        model.eval();
        using var noGrad = torch.no_grad();
        var (ids, mask) = LeftPadded(padId: 0);
        using var cache = model.CreateCache(batch: 2);
        var prefill = model.call(new CausalLMInput(ids, Cache: cache, AttentionMask: mask)).Logits;
        Assert.True(cache.HasPadding);
        Assert.Equal(new long[] { 5, 8 }, cache.RealTokenCounts());
        var rows = new List<long>[] { [.. Short], [.. Long] };
        Tiny.AssertClose(Alone(model, Short)[-1], prefill[0, -1], atol: 1e-5);

        // a forward that fails (a token outside the vocabulary) leaves the cache as it was
        Assert.Throws<ArgumentException>(() => model.call(new CausalLMInput(torch.tensor(new long[] { 9, 99 }, 2, 1), Cache: cache)));
        Assert.Equal(new long[] { 5, 8 }, cache.RealTokenCounts());
        Assert.Equal(8, cache.Length);

        long[][] next = [[9, 6], [2, 13], [17, 1]]; // one new token per row per step, no mask: both real
        foreach (long[] step in next)
        {
            var logits = model.call(new CausalLMInput(torch.tensor(step, 2, 1), Cache: cache)).Logits; // (2, 1, V)
            for (int b = 0; b < 2; b++)
            {
                rows[b].Add(step[b]);
                Tiny.AssertClose(Alone(model, [.. rows[b]])[-1], logits[b, 0], atol: 1e-5);
            }
        }

        Assert.Equal(new long[] { 8, 11 }, cache.RealTokenCounts());
        cache.Reset();
        Assert.False(cache.HasPadding);
    }

    [Fact]
    public void Router_losses_count_only_real_labelled_tokens()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(33);
        using var model = new MoeForCausalLM(Tiny.Options(o => { o.LoadBalancingCoef = 0.01; o.ZLossCoef = 0.001; }));
        model.eval();
        using var noGrad = torch.no_grad();
        var (ids, mask) = LeftPadded(padId: 6);
        var labels = torch.tensor(new long[] { 5, 5, 5, 2, 8, -100, 7, 1, 4, 2, 8, 5, 7, 3, 0, -100 }, 2, 8); // pads carry labels on purpose
        var output = model.call(new CausalLMInput(ids, labels, AttentionMask: mask, OutputRouterLogits: true));
        Assert.Equal(2, output.Routing!.Count);

        // naive reference over the counted tokens (real, label ≠ -100), from the router's own logits and choices
        bool[] counted = [false, false, false, true, true, false, true, true, true, true, true, true, true, true, true, false];
        int k = 2, e = 4, m = counted.Count(c => c);
        double lb = 0, z = 0;
        foreach (var layer in output.Routing)
        {
            double[] logits = Tiny.Values(layer.Logits);
            long[] chosen = layer.SelectedExperts.data<long>().ToArray();
            var f = new double[e];
            var p = new double[e];
            double zLayer = 0;
            for (int n = 0; n < counted.Length; n++)
            {
                if (!counted[n]) continue;
                double max = Enumerable.Range(0, e).Max(i => logits[n * e + i]);
                double sum = Enumerable.Range(0, e).Sum(i => Math.Exp(logits[n * e + i] - max));
                for (int i = 0; i < e; i++) p[i] += Math.Exp(logits[n * e + i] - max) / sum / m;
                for (int j = 0; j < k; j++) f[chosen[n * k + j]] += 1.0 / (m * k);
                double lse = max + Math.Log(sum);
                zLayer += lse * lse / m;
            }

            lb += e * Enumerable.Range(0, e).Sum(i => f[i] * p[i]) / 2; // mean over the two MoE layers
            z += zLayer / 2;
        }

        Assert.Equal(lb, output.LoadBalancingLoss.item<float>(), 4);
        Assert.Equal(z, output.ZLoss.item<float>(), 4);

        // the LM loss: mean cross-entropy over the same counted positions
        double[] all = Tiny.Values(output.Logits);
        long[] target = labels.data<long>().ToArray();
        double ce = 0;
        for (int n = 0; n < counted.Length; n++)
        {
            if (!counted[n]) continue;
            var row = all.Skip(n * 19).Take(19).ToArray();
            double max = row.Max();
            ce += (max + Math.Log(row.Sum(v => Math.Exp(v - max))) - row[target[n]]) / m;
        }

        Assert.Equal(ce, output.LmLoss!.item<float>(), 4);
        Assert.Equal(ce + 0.01 * lb + 0.001 * z, output.Loss!.item<float>(), 4);
    }

    [Fact]
    public void The_utilization_window_records_only_real_labelled_tokens()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(34);
        using var model = new MoeForCausalLM(Tiny.Options(o => o.UtilizationWindow = 3));
        model.train();
        var (ids, mask) = LeftPadded(padId: 6);
        var labels = ids.clone();
        labels[1, 0] = torch.tensor(-100L);
        var output = model.call(new CausalLMInput(ids, labels, AttentionMask: mask));
        long counted = 5 + 7; // row 0's real tokens, row 1's minus one ignored label
        foreach (var (name, buffer) in model.named_buffers().Where(b => b.name.EndsWith("utilization.counts", StringComparison.Ordinal)))
            Assert.Equal(counted * 2, buffer.sum().item<long>()); // k = 2 assignments per counted token
        Assert.All(output.RouterStats, s => Assert.Equal(counted * 2, s.TokensPerExpert.sum().item<long>()));
    }

    [Fact]
    public void Final_hidden_states_and_routing_come_back_when_asked_for()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(35);
        using var model = new MoeForCausalLM(Tiny.Options(o => o.MoeEvery = 2)); // layer 0 dense, layer 1 MoE
        model.eval();
        using var noGrad = torch.no_grad();
        var ids = torch.tensor(Long, 1, 8);
        var plain = model.call(new CausalLMInput(ids));
        Assert.Null(plain.LastHiddenState);
        Assert.Empty(plain.Routing!);

        var output = model.call(new CausalLMInput(ids, OutputRouterLogits: true, OutputHiddenStates: true));
        var h = output.LastHiddenState!;                                                        // (1, 8, 16)
        Assert.Equal(new long[] { 1, 8, 16 }, h.shape);
        var head = Tiny.Param(model, "lm_head.weight");                                         // (V, C)
        Tiny.AssertClose(torch.matmul(h, head.t()), output.Logits, atol: 1e-5);
        var routing = Assert.Single(output.Routing!);
        Assert.Equal(1, routing.Layer);
        Assert.Equal(new long[] { 8, 4 }, routing.Logits.shape);
        Assert.Equal(new long[] { 8, 2 }, routing.SelectedExperts.shape);
        // the chosen experts are the top-2 of the logits (no noise in evaluation), the weights a softmax over them
        var (top, best) = routing.Logits.topk(2);
        Assert.Equal(best.data<long>().ToArray(), routing.SelectedExperts.data<long>().ToArray());
        Tiny.AssertClose(top.softmax(-1), routing.Weights, atol: 1e-6);
    }

    [Fact]
    public void Padding_runs_through_no_expert_and_takes_no_capacity()
    {
        using var scope = torch.NewDisposeScope();
        // four tokens all routed to expert 0, the first two padding; capacity 2 keeps both real ones
        var indices = torch.zeros(4, 1, dtype: ScalarType.Int64);
        var weights = torch.ones(4, 1);
        var real = torch.tensor(new[] { false, false, true, true });
        using var plan = TokenDispatch.Plan(indices, weights, experts: 2, capacity: 2, batch: 1, tokenMask: real);
        Assert.Equal(new long[] { 2, 0 }, plan.Assigned);
        Assert.Equal(new long[] { 2, 0 }, plan.Kept);
        Assert.Equal(new long[] { 2, 3 }, plan.TokenIndex.data<long>().ToArray());
        using var dropless = TokenDispatch.Plan(indices, weights, experts: 2, capacity: null, batch: 1, tokenMask: real);
        Assert.Equal(new long[] { 2, 3 }, dropless.TokenIndex.data<long>().ToArray());
        using var unmasked = TokenDispatch.Plan(indices, weights, experts: 2, capacity: 2, batch: 1);
        Assert.Equal(new long[] { 0, 1 }, unmasked.TokenIndex.data<long>().ToArray()); // without the mask the pads would win
    }

    [Fact]
    public void Bad_attention_masks_are_refused_naming_the_problem()
    {
        using var scope = torch.NewDisposeScope();
        using var model = new MoeForCausalLM(Tiny.Options());
        var ids = torch.tensor(Long, 1, 8);
        Assert.Contains("AttentionMask shape", Assert.Throws<ArgumentException>(() => model.call(new CausalLMInput(ids, AttentionMask: torch.ones(1, 7, dtype: ScalarType.Int64)))).Message);
        Assert.Contains("value 2", Assert.Throws<ArgumentException>(() => model.call(new CausalLMInput(ids, AttentionMask: torch.full(1, 8, 2L)))).Message);
        Assert.Contains("Float32", Assert.Throws<ArgumentException>(() => model.call(new CausalLMInput(ids, AttentionMask: torch.ones(1, 8)))).Message);
    }

    [Fact]
    public void Sequence_log_probs_are_teacher_forced_and_padding_free()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(36);
        using var model = new MoeForCausalLM(Tiny.Options(o => o.Positions = PositionEncoding.Rope));
        model.eval();
        using var noGrad = torch.no_grad();
        var (ids, mask) = LeftPadded(padId: 9);
        var (logProbs, counted) = model.SequenceLogProbs(ids, mask);                             // (2, 7)
        Assert.Equal(new[] { false, false, false, true, true, true, true }, counted[0].data<bool>().ToArray());

        // reference: log_softmax of each row alone, at the next token, computed naively
        foreach (var (row, b, offset) in new[] { (Short, 0, 3), (Long, 1, 0) })
        {
            double[] logits = Tiny.Values(Alone(model, row));
            double[] got = Tiny.Values(logProbs[b]);
            for (int t = 0; t + 1 < row.Length; t++)
            {
                var at = logits.Skip(t * 19).Take(19).ToArray();
                double lse = Math.Log(at.Sum(Math.Exp));
                Assert.Equal(at[row[t + 1]] - lse, got[offset + t], 4);
            }
        }

        Assert.All(Tiny.Values(logProbs[0, ..3]), v => Assert.Equal(0, v));
    }
}
