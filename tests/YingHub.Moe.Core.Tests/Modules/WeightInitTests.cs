using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Modules;

public class WeightInitTests
{
    // C 64, H 256, 2 layers: the residual scale is 1 / sqrt(2 * 2) = 1/2
    private static MoeModelOptions Options(InitScheme scheme, ResidualInitScheme? residual) => Tiny.Options(o =>
    {
        o.HiddenSize = 64; o.NumHeads = 4; o.ExpertMultiplier = 4; o.DenseMultiplier = 4; o.NumExperts = 4; o.DeepExperts = 1;
        o.SharedExpert = true; o.MoeEvery = 2; o.Router = RouterKind.NoisyTopK; o.Init = scheme; o.InitStd = 0.02; o.ResidualInit = residual;
    });

    // the standard deviation each scheme draws a (out, in) weight with, before any residual scaling
    private static double SchemeStd(InitScheme scheme, int fanIn, int fanOut) => scheme switch
    {
        InitScheme.Normal => 0.02,
        InitScheme.KaimingNormal => Math.Sqrt(2.0 / fanIn),              // ReLU gain, fan-in
        InitScheme.Xavier => Math.Sqrt(2.0 / (fanIn + fanOut)),          // uniform(±sqrt(6 / (in + out)))
        _ => throw new ArgumentOutOfRangeException(nameof(scheme)),
    };

    [Theory]
    [InlineData(InitScheme.Normal, null, 0.5)]       // GPT-2: scaled by default
    [InlineData(InitScheme.Normal, ResidualInitScheme.Unscaled, 1.0)]
    [InlineData(InitScheme.Normal, ResidualInitScheme.Zero, 0.0)]
    [InlineData(InitScheme.KaimingNormal, null, 1.0)] // PyTorch's kaiming_normal_ (makeMoE): unscaled by default
    [InlineData(InitScheme.KaimingNormal, ResidualInitScheme.Scaled, 0.5)]
    [InlineData(InitScheme.KaimingNormal, ResidualInitScheme.Zero, 0.0)]
    [InlineData(InitScheme.Xavier, ResidualInitScheme.Scaled, 0.5)]
    public void Projections_into_the_residual_stream_start_as_told_and_no_other_weight_changes(InitScheme scheme, ResidualInitScheme? residual, double factor)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(5);
        using var model = new MoeForCausalLM(Options(scheme, residual));
        const int c = 64, h = 256;
        // (name, fan-in, fan-out, whether it writes into the residual stream)
        (string Name, int In, int Out, bool Residual)[] weights =
        [
            ("layers.1.block_sparse_moe.gate.weight", c, 4, false),                  // the router and its noise
            ("layers.1.block_sparse_moe.gate.noise.weight", c, 4, false),
            ("lm_head.weight", c, 19, false),
            ("layers.0.self_attn.qkv_proj.weight", c, 3 * c, false),
            ("layers.0.self_attn.o_proj.weight", c, c, true),
            ("layers.1.self_attn.o_proj.weight", c, c, true),
            ("layers.0.mlp.ffn.fc1.weight", c, h, false),
            ("layers.0.mlp.ffn.fc2.weight", h, c, true),                              // a dense layer (MoeEvery 2)
            ("layers.1.block_sparse_moe.experts.fc1.weight", c, h, false),
            ("layers.1.block_sparse_moe.experts.fc2.weight", h, c, true),
            ("layers.1.block_sparse_moe.deep_experts.fc2.weight", h, h, false),        // deep: H -> H stays inside the expert
            ("layers.1.block_sparse_moe.deep_experts.fc3.weight", h, c, true),
            ("layers.1.block_sparse_moe.shared_expert.ffn.fc2.weight", h, c, true),
        ];
        foreach (var (name, fanIn, fanOut, isResidual) in weights)
        {
            var w = Tiny.Param(model, name);
            double expected = SchemeStd(scheme, fanIn, fanOut) * (isResidual ? factor : 1.0);
            double std = Math.Sqrt(w.to(ScalarType.Float64).pow(2).mean().item<double>()); // about zero mean: the RMS
            if (expected == 0) Assert.True(std == 0, $"{name}: RMS {std}, expected all zeros");
            else Assert.True(std >= expected * 0.85 && std <= expected * 1.15, $"{name}: RMS {std}, expected {expected}");
        }

        // embeddings: GPT-2's std with the normal scheme, PyTorch's normal(0, 1) with the others (makeMoE)
        double embedding = Math.Sqrt(Tiny.Param(model, "embed_tokens.weight").to(ScalarType.Float64).pow(2).mean().item<double>());
        double expectedEmbedding = scheme == InitScheme.Normal ? 0.02 : 1.0;
        Assert.InRange(embedding, expectedEmbedding * 0.8, expectedEmbedding * 1.2);
    }

    [Fact]
    public void With_zero_residual_projections_every_layer_starts_as_the_identity()
    {
        // the logits must equal head(norm(token + position embeddings)) computed here by hand: any branch (attention,
        // routed, deep or shared expert, dense layer) that wrote into the stream at init would move them
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(11);
        var options = Options(InitScheme.KaimingNormal, ResidualInitScheme.Zero);
        using var model = new MoeForCausalLM(options);
        model.eval();
        var ids = torch.tensor(new long[] { 3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8 }).reshape(2, 6); // (B, T)
        var logits = model.Logits(ids);                                                           // (B, T, V)

        var x = Tiny.Param(model, "embed_tokens.weight").index_select(0, ids.flatten()).reshape(2, 6, 64)
            + Tiny.Param(model, "embed_positions.weight")[..6];                                    // (B, T, C)
        var mean = x.mean([-1], keepdim: true);
        var variance = (x - mean).pow(2).mean([-1], keepdim: true);
        var normed = (x - mean) / (variance + options.NormEpsilon).sqrt() * Tiny.Param(model, "norm.weight") + Tiny.Param(model, "norm.bias");
        var expected = normed.matmul(Tiny.Param(model, "lm_head.weight").t());                   // (B, T, V)
        Tiny.AssertClose(expected, logits, atol: 1e-4);

        // not a dead start: the zero projections get gradients from the first step (their inputs are not zero)
        model.train();
        var loss = nn.functional.cross_entropy(model.Logits(ids).reshape(12, -1), ids.roll(-1, 1).flatten());
        loss.backward();
        foreach (string name in new[] { "layers.0.self_attn.o_proj.weight", "layers.0.mlp.ffn.fc2.weight", "layers.1.block_sparse_moe.experts.fc2.weight",
                     "layers.1.block_sparse_moe.deep_experts.fc3.weight", "layers.1.block_sparse_moe.shared_expert.ffn.fc2.weight" })
            Assert.True(Tiny.Param(model, name).grad!.abs().sum().item<float>() > 0, $"{name} has no gradient");
    }
}
