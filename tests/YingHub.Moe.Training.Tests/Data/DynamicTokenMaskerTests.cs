using YingHub.Moe.Training.Data;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Tests.Data;

public class DynamicTokenMaskerTests
{
    private const long MaskId = 0;
    private const long Vocab = 1000;

    private static Tensor RandomIds(long rows, long cols, ulong seed)
    {
        using var g = new Generator(seed);
        return randint(1, Vocab, [rows, cols], ScalarType.Int64, generator: g); // ids never equal MaskId
    }

    // TorchSharp's Tensor.equal is element-wise (eq), not PyTorch's boolean torch.equal.
    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    [Fact]
    public void MaskedFractionMatchesProbabilityAndOnlyMaskedPositionsChange()
    {
        using var scope = NewDisposeScope();
        const double P = 0.2;
        var ids = RandomIds(256, 1024, seed: 1);
        using var g = new Generator(42);
        var masked = DynamicTokenMasker.Apply(ids, MaskId, P, g);

        long n = ids.numel();
        long maskedCount = masked.eq(MaskId).sum().item<long>();
        double fraction = maskedCount / (double)n;
        double sigma = Math.Sqrt(P * (1 - P) / n);
        Assert.InRange(fraction, P - 5 * sigma, P + 5 * sigma);
        // Every position is either unchanged or the mask id.
        Assert.True(masked.eq(ids).logical_or(masked.eq(MaskId)).all().item<bool>());
        Assert.Equal(ScalarType.Int64, masked.dtype);
        Assert.Equal(ids.shape, masked.shape);
    }

    [Fact]
    public void TargetsAndInputsAreUntouched()
    {
        using var scope = NewDisposeScope();
        var block = RandomIds(8, 65, seed: 2);
        var x = block[.., ..^1];
        var y = block[.., 1..];
        var xBefore = x.clone();
        var yBefore = y.clone();
        using var g = new Generator(7);
        var masked = DynamicTokenMasker.Apply(x, MaskId, 0.5, g);
        Assert.True(masked.eq(MaskId).any().item<bool>());
        Assert.True(Same(x, xBefore));
        Assert.True(Same(y, yBefore));
    }

    [Fact]
    public void ZeroProbabilityIsIdentityAndOneMasksAll()
    {
        using var scope = NewDisposeScope();
        var ids = RandomIds(4, 32, seed: 3);
        using var g = new Generator(1);
        Assert.True(Same(DynamicTokenMasker.Apply(ids, MaskId, 0, g), ids));
        Assert.True(DynamicTokenMasker.Apply(ids, MaskId, 1, g).eq(MaskId).all().item<bool>());
    }

    [Fact]
    public void SameSeedSameMaskDifferentSeedDifferentMask()
    {
        using var scope = NewDisposeScope();
        var ids = RandomIds(16, 128, seed: 4);
        using var g1 = new Generator(123);
        using var g2 = new Generator(123);
        using var g3 = new Generator(124);
        var a = DynamicTokenMasker.Apply(ids, MaskId, 0.3, g1);
        var b = DynamicTokenMasker.Apply(ids, MaskId, 0.3, g2);
        var c = DynamicTokenMasker.Apply(ids, MaskId, 0.3, g3);
        Assert.True(Same(a, b));
        Assert.False(Same(a, c));
    }

    [Fact]
    public void ScheduledProbabilityDecaysLinearly()
    {
        var masker = new DynamicTokenMasker(new TokenMaskingOptions { MaskTokenId = 5 });
        Assert.Equal(0.20, masker.ProbabilityAt(0, 100), 12);
        Assert.Equal(0.125, masker.ProbabilityAt(50, 100), 12);
        Assert.Equal(0.05, masker.ProbabilityAt(100, 100), 12);
        using var scope = NewDisposeScope();
        using var g = new Generator(9);
        var ids = RandomIds(2, 8, seed: 5);
        Assert.Equal(ids.shape, masker.Mask(ids, 10, 100, g).shape);
    }

    [Fact]
    public void RejectsBadInput()
    {
        using var scope = NewDisposeScope();
        var ids = RandomIds(2, 2, seed: 6);
        Assert.Equal("probability", Assert.Throws<ArgumentException>(() => DynamicTokenMasker.Apply(ids, MaskId, 1.5, null)).ParamName);
        Assert.Equal("probability", Assert.Throws<ArgumentException>(() => DynamicTokenMasker.Apply(ids, MaskId, double.NaN, null)).ParamName);
        Assert.Equal("maskTokenId", Assert.Throws<ArgumentException>(() => DynamicTokenMasker.Apply(ids, -1, 0.1, null)).ParamName);
        Assert.Equal("inputIds", Assert.Throws<ArgumentException>(() => DynamicTokenMasker.Apply(ids.to(ScalarType.Int32), MaskId, 0.1, null)).ParamName);
        var ex = Assert.Throws<ArgumentException>(() => new DynamicTokenMasker(new TokenMaskingOptions { StartProbability = 2 }));
        Assert.Equal("StartProbability", ex.ParamName);
    }
}
