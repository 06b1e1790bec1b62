using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Modules;

public class ExpertBankTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void SwiGlu_experts_compute_down_of_silu_gate_times_up(bool deep)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(12);
        var options = Tiny.Options(o => o.Activation = ExpertActivation.SwiGlu);
        using var bank = new ExpertBank(3, deep, options);
        var x = torch.randn(5, 16);
        int h = options.ExpertMultiplier * options.HiddenSize;

        Tensor Layer(string name, Tensor input, int e) =>
            torch.matmul(input, Tiny.Param(bank, name + ".weight")[e]) + Tiny.Param(bank, name + ".bias")[e]; // (in, out)
        Tensor Glu(Tensor gateUp) => nn.functional.silu(gateUp[.., ..h]) * gateUp[.., h..];

        var all = bank.Forward([x, x, x]);
        for (int e = 0; e < 3; e++)
        {
            var hidden = Glu(Layer("fc1", x, e));                               // (5, H)
            var expected = deep ? Layer("fc3", Glu(Layer("fc2", hidden, e)), e) : Layer("fc2", hidden, e);
            Tiny.AssertClose(expected, bank.Forward(e, x));
            Tiny.AssertClose(expected, all[e]!);
        }

        Assert.Null(bank.Forward([null, x, null])[2]); // experts without tokens produce nothing
    }

    [Theory]
    [InlineData(InitScheme.Normal, 0.02)]
    [InlineData(InitScheme.KaimingNormal, 0.0)]
    public void Each_stacked_expert_is_initialised_as_its_own_linear(InitScheme scheme, double std)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(13);
        var options = Tiny.Options(o => { o.Init = scheme; o.InitStd = std > 0 ? std : 0.02; o.HiddenSize = 64; o.NumHeads = 4; });
        using var bank = new ExpertBank(4, deep: false, options);
        var fc1 = Tiny.Param(bank, "fc1.weight"); // (E, C, H): fan-in C = 64
        double expected = scheme == InitScheme.Normal ? 0.02 : Math.Sqrt(2.0 / 64); // Kaiming normal (ReLU gain) with fan-in
        for (int e = 0; e < 4; e++) Assert.InRange(fc1[e].std().item<float>(), expected * 0.9, expected * 1.1);
        Assert.Equal(0, Tiny.Param(bank, "fc1.bias").abs().sum().item<float>());
    }
}
