using TorchSharp;
using YingHub.Moe.Core.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Modules;

public class InferenceViewsTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)] // the views are first made under inference mode, as generation runs
    public void No_grad_forwards_see_in_place_weight_updates_and_agree_with_the_autograd_path(bool inferenceMode)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(31);
        using var model = new MoeForCausalLM(Tiny.Options(o => o.SharedExpert = true));
        model.eval();
        var ids = torch.randint(0, 19, [2, 9]);
        IDisposable Inference() => inferenceMode ? torch.inference_mode() : torch.no_grad();
        Tensor Cached() { using var _ = Inference(); return model.call(new CausalLMInput(ids)).Logits; }
        Tensor Autograd() => model.call(new CausalLMInput(ids)).Logits.detach(); // grad enabled: the per-call slicing path

        var before = Cached();
        Tiny.AssertClose(Autograd(), before, atol: 1e-6);
        using (torch.no_grad())
        {
            foreach (var (name, p) in model.named_parameters())
                if (name.Contains("experts", StringComparison.Ordinal)) p.mul_(1.5).add_(0.01); // in place, as an optimizer step
        }

        var after = Cached();
        Assert.False(after.allclose(before), "the cached views missed the update");
        Tiny.AssertClose(Autograd(), after, atol: 1e-6);

        // one-token decoding (one sequence: the MoE block's one-token path) goes through the same views
        using var noGrad = Inference();
        using var cache = model.CreateCache(batch: 1);
        model.call(new CausalLMInput(ids[..1, ..8], Cache: cache));
        var last = model.call(new CausalLMInput(ids[..1, 8..9], Cache: cache)).Logits;
        Tiny.AssertClose(after[..1, 8..9], last, atol: 1e-5);
    }
}
