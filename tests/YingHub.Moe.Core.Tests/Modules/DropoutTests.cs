using TorchSharp;
using YingHub.Moe.Core.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Modules;

public class DropoutTests
{
    [Theory]
    [InlineData(ScalarType.Float32, 0.3)]
    [InlineData(ScalarType.BFloat16, 0.1)]
    public void Inverted_dropout_keeps_one_minus_p_scales_the_kept_and_passes_the_mask_to_the_gradient(ScalarType dtype, double p)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(4);
        const int n = 200_000;
        var x = torch.ones(n, dtype: dtype).requires_grad_();
        var y = Regularization.Dropout(x, p, training: true);
        y.sum().backward();

        double[] values = Tiny.Values(y);
        double dropped = values.Count(v => v == 0) / (double)n;
        double sd = Math.Sqrt(p * (1 - p) / n);
        Assert.True(Math.Abs(dropped - p) < 5 * sd, $"dropped {dropped}, expected {p} ± {5 * sd}");
        double scale = Tiny.Values(torch.tensor(1.0 / (1 - p)).to(dtype))[0];
        Assert.All(values.Where(v => v != 0), v => Assert.Equal(scale, v, 6));
        Assert.Equal(values, Tiny.Values(x.grad!)); // d(sum y)/dx = the scaled mask
    }

    [Fact]
    public void Inactive_dropout_returns_its_input_and_p_one_drops_everything()
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.randn(10);
        Assert.Same(x, Regularization.Dropout(x, 0.5, training: false));
        Assert.Same(x, Regularization.Dropout(x, 0.0, training: true));
        Assert.All(Tiny.Values(Regularization.Dropout(x, 1.0, training: true)), v => Assert.Equal(0, v));
    }

    [Fact]
    public void Embedding_dropout_defaults_to_the_hidden_dropout_and_can_be_set_apart()
    {
        using var scope = torch.NewDisposeScope();
        var ids = torch.tensor(new long[] { 1, 4, 2, 7, 3, 9 }, 1, 6);
        Tensor TrainingLogits(double hidden, double? embeddings)
        {
            torch.manual_seed(5); // the same weights and the same dropout draws in every call
            using var model = new MoeForCausalLM(Tiny.Options(o => { o.Dropout = hidden; o.AttentionDropout = 0; o.EmbeddingDropout = embeddings; }));
            model.train();
            using var noGrad = torch.no_grad();
            return model.call(new CausalLMInput(ids)).Logits.MoveToOuterDisposeScope();
        }

        Tiny.AssertClose(TrainingLogits(0.5, 0.5), TrainingLogits(0.5, null), atol: 0, rtol: 0); // null: the hidden dropout
        Assert.False(TrainingLogits(0.5, 0.0).allclose(TrainingLogits(0.5, 0.5)), "setting embedding dropout apart changed nothing");
        Assert.False(TrainingLogits(0, 0.5).allclose(TrainingLogits(0, null)), "embedding dropout alone left the embeddings untouched");
        Tiny.AssertClose(TrainingLogits(0, null), TrainingLogits(0, 0.0), atol: 0, rtol: 0); // no dropout anywhere: deterministic
    }
}
