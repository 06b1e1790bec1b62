using TorchSharp;
using YingHub.Moe.Core.Modules;

namespace YingHub.Moe.Core.Tests.Modules;

public class RotaryEmbeddingTests
{
    [Fact]
    public void The_tables_are_made_once_per_device_not_at_every_call()
    {
        // Tensor.device returns a new Device at every call, so a reference comparison would move (re-wrap) the tables
        // at every layer of every step
        using var rope = new RotaryEmbedding(headDim: 4, maxPositions: 8, theta: 10000);
        using var x = torch.randn(1, 1, 3, 4); // (B, nh, T, hd)
        var cos = rope.Tables(x).Cos;
        using (rope.Apply(x, start: 2)) { }
        Assert.Same(cos, rope.Tables(x).Cos);
        Assert.False(cos.IsInvalid);
    }
}
