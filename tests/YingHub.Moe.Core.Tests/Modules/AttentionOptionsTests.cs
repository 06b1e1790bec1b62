using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Kernels;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Testing;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Modules;

/// <summary>
/// The attention scale rule (1/√hd or makeMoE's 1/√C) and the separate query/key/value and output biases, on a real
/// <see cref="CausalSelfAttention"/> against a naive per-head attention written here: the full forward
/// (<c>scaled_dot_product_attention</c>), KV-cached decoding, the training path with attention dropout, and the managed
/// decoding kernel given the rule's scale.
/// </summary>
public class AttentionOptionsTests
{
    private const int C = 16, Heads = 2, Hd = C / Heads, T = 6;

    private static MoeModelOptions Options(AttentionScaleRule rule, bool? qkvBias, bool? outBias, bool bias = true) => Tiny.Options(o =>
    {
        o.AttentionScale = rule;
        o.AttentionQkvBias = qkvBias;
        o.AttentionOutputBias = outBias;
        o.Bias = bias;
        o.BiasInit = BiasInitScheme.Uniform; // non-zero biases, so a bias that is used (or not) shows
    });

    private static double Scale(AttentionScaleRule rule) => rule == AttentionScaleRule.HiddenSize ? 1 / Math.Sqrt(C) : 1 / Math.Sqrt(Hd);

    /// <summary>
    /// Naive attention: qkv = x W (+ b), per head softmax(q kᵀ · scale, causal) v, heads concatenated, then the output
    /// projection. With <paramref name="dropout"/> the (B, nh, T, T) probabilities are masked by <c>rand_like ≥ p</c>
    /// and scaled by 1/(1 − p), drawn from the global generator.
    /// </summary>
    private static Tensor Reference(CausalSelfAttention attention, Tensor x, double scale, double dropout = 0)
    {
        var named = attention.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
        var qkv = x.matmul(named["qkv_proj.weight"]);                                        // (B, T, 3C)
        if (named.TryGetValue("qkv_proj.bias", out var b)) qkv = qkv + b;
        long t = x.size(1);
        var future = torch.ones(t, t).triu(1).to(ScalarType.Bool);                             // (T, T): key after query
        var probs = torch.stack(Enumerable.Range(0, Heads).Select(h =>
        {
            var q = qkv.narrow(-1, h * Hd, Hd);
            var k = qkv.narrow(-1, C + h * Hd, Hd);
            return q.matmul(k.transpose(1, 2)).mul(scale).masked_fill(future, double.NegativeInfinity).softmax(-1); // (B, T, T)
        }).ToList(), 1);                                                                        // (B, nh, T, T)
        if (dropout > 0) probs = probs * (torch.rand_like(probs) >= dropout).to(ScalarType.Float32) / (1 - dropout);
        var y = torch.cat(Enumerable.Range(0, Heads).Select(h => probs.select(1, h).matmul(qkv.narrow(-1, 2 * C + h * Hd, Hd))).ToList(), -1); // (B, T, C)
        y = y.matmul(named["o_proj.weight"]);
        return named.TryGetValue("o_proj.bias", out var ob) ? y + ob : y;
    }

    [Theory]
    [InlineData(AttentionScaleRule.HeadDim, null, null)]
    [InlineData(AttentionScaleRule.HiddenSize, null, null)]
    [InlineData(AttentionScaleRule.HiddenSize, false, true)] // makeMoE's biases
    [InlineData(AttentionScaleRule.HeadDim, true, false)]
    public void Full_forward_follows_the_scale_rule_and_the_biases(AttentionScaleRule rule, bool? qkvBias, bool? outBias)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(3);
        using var attention = new CausalSelfAttention(Options(rule, qkvBias, outBias));
        attention.eval();
        var x = torch.randn(2, T, C) * 3; // large enough that the softmax is far from uniform and the two scales differ
        var names = attention.named_parameters().Select(p => p.name).ToList();
        Assert.Equal(qkvBias ?? true, names.Contains("qkv_proj.bias"));
        Assert.Equal(outBias ?? true, names.Contains("o_proj.bias"));
        using (torch.no_grad()) Tiny.AssertClose(Reference(attention, x, Scale(rule)), attention.Forward(x, null, null, 0), atol: 1e-5);
    }

    [Theory]
    [InlineData(AttentionScaleRule.HeadDim)]
    [InlineData(AttentionScaleRule.HiddenSize)]
    public void Cached_decoding_uses_the_same_scale(AttentionScaleRule rule)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(4);
        using var attention = new CausalSelfAttention(Options(rule, false, true));
        attention.eval();
        var x = torch.randn(1, T, C) * 3;
        using var cache = new KvCache(1, 1, Heads, T, Hd, ScalarType.Float32, torch.CPU);
        var steps = new List<Tensor>();
        using (torch.inference_mode()) // one token a step: the managed decoding kernel where it runs, else libtorch's cached path
        {
            for (int t = 0; t < T; t++)
            {
                steps.Add(attention.Forward(x.narrow(1, t, 1), null, cache, 0).clone());
                cache.Advance(1);
            }
        }

        using (torch.no_grad()) Tiny.AssertClose(Reference(attention, x, Scale(rule)), torch.cat(steps, 1), atol: 1e-5);
    }

    [Theory]
    [InlineData(AttentionScaleRule.HeadDim)]
    [InlineData(AttentionScaleRule.HiddenSize)]
    public void Training_with_attention_dropout_uses_the_same_scale(AttentionScaleRule rule)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(5);
        var options = Options(rule, null, null);
        options.AttentionDropout = 0.3; // the library's dropout attention: one rand_like over (B, nh, T, T), as the reference draws it
        options.Dropout = 0;
        using var attention = new CausalSelfAttention(options);
        attention.train();
        var x = torch.randn(2, T, C) * 3;
        torch.manual_seed(6);
        var ours = attention.Forward(x, null, null, 0);
        torch.manual_seed(6);
        Tiny.AssertClose(Reference(attention, x, Scale(rule), dropout: 0.3), ours, atol: 1e-5);
    }

    [SimdKernelFact]
    public void The_decoding_kernel_scales_scores_by_the_given_scale()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(7);
        const int length = 5, position = 3;
        var qkv = torch.randn(1, 1, 3 * C) * 3;
        var keys = torch.randn(1, Heads, length, Hd);
        var values = torch.randn(1, Heads, length, Hd);
        var keysBefore = keys.clone();
        var valuesBefore = values.clone();
        float scale = 1f / MathF.Sqrt(C);
        Tensor y;
        using (torch.inference_mode())
        {
            Assert.True(AttentionRow.Applies(qkv, keys, values, position, null));
            y = AttentionRow.Attend(qkv, keys, values, position, null, scale);
        }

        for (int h = 0; h < Heads; h++)
        {
            var q = qkv[0, 0].narrow(0, h * Hd, Hd);                                                                  // (hd)
            var k = torch.cat([keysBefore[0, h].narrow(0, 0, position), qkv[0, 0].narrow(0, C + h * Hd, Hd).unsqueeze(0)], 0);   // (position + 1, hd)
            var v = torch.cat([valuesBefore[0, h].narrow(0, 0, position), qkv[0, 0].narrow(0, 2 * C + h * Hd, Hd).unsqueeze(0)], 0);
            var expected = k.matmul(q).mul(scale).softmax(0).matmul(v);                                               // (hd)
            Tiny.AssertClose(expected, y[0, 0].narrow(0, h * Hd, Hd), atol: 1e-5);
        }
    }
}
