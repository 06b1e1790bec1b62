using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Quantization;

/// <summary>
/// A layer's weight stored quantized (<see cref="BlockQuantization"/>): persistent buffers <c>codes</c> and
/// <c>absmax</c>, registered under the layer as <c>quantized_weight</c> (so they move with the model and count in its
/// buffers), plus the float weight's shape. A move (<c>to</c>) replaces the buffers and TorchSharp sets the fields to the new ones
/// (hence not readonly). The float weight is rebuilt on every read and never kept.
/// </summary>
internal sealed class QuantizedWeight : nn.Module
{
    /// <summary>The name the owning layer registers this module under.</summary>
    public const string ModuleName = "quantized_weight";

    [TorchSharp.Utils.ComponentName(Name = "codes")] private Tensor _codes;   // NF4: uint8 (⌈M/bs⌉·bs/2); int8: int8 (⌈M/bs⌉·bs)
    [TorchSharp.Utils.ComponentName(Name = "absmax")] private Tensor _absmax; // float32 (⌈M/bs⌉)
    private readonly long[] _shape;

    /// <summary>Quantizes a copy of <paramref name="weight"/> (which stays the caller's to free).</summary>
    public QuantizedWeight(Tensor weight, QuantizationKind kind, int blockSize) : base(nameof(QuantizedWeight))
    {
        (_codes, _absmax) = BlockQuantization.Quantize(weight, kind, blockSize);
        _codes = _codes.DetachFromDisposeScope();
        _absmax = _absmax.DetachFromDisposeScope();
        _shape = weight.shape;
        Kind = kind;
        BlockSize = blockSize;
        RegisterComponents();
    }

    /// <summary>
    /// Quantizes <paramref name="weight"/>, the float weight of <paramref name="owner"/>, and puts the store in its place:
    /// <paramref name="unregister"/> removes the Parameter from the owner (a protected TorchSharp call only the owner can
    /// make), the Parameter is freed, and the store is registered as <see cref="ModuleName"/>. Returns the store.
    /// </summary>
    public static QuantizedWeight Replace(nn.Module owner, Parameter weight, QuantizationKind kind, int blockSize, Action unregister)
    {
        var store = new QuantizedWeight(weight, kind, blockSize);
        unregister();
        weight.Dispose();
        owner.register_module(ModuleName, store);
        return store;
    }

    /// <summary>The storage format.</summary>
    public QuantizationKind Kind { get; }

    /// <summary>Elements per absmax scale.</summary>
    public int BlockSize { get; }

    /// <summary>The float weight's shape.</summary>
    public IReadOnlyList<long> Shape => _shape;

    /// <summary>The packed codes (their device is the layer's).</summary>
    public Tensor Codes => _codes;

    /// <summary>The bytes held: codes and absmax scales.</summary>
    public long Bytes => buffers().Sum(b => b.numel() * b.ElementSize);

    /// <summary>The whole weight, in the stored shape (absmax's dtype); the caller owns it (current dispose scope).</summary>
    public Tensor Dequantize() =>
        BlockQuantization.Dequantize(_codes, _absmax, Kind, BlockSize, 0, _shape.Aggregate(1L, (a, d) => a * d)).view(_shape);

    /// <summary>Slice <paramref name="index"/> along the first dimension ((n, in, out) → (in, out)), decoding only the blocks it covers.</summary>
    public Tensor Dequantize(long index)
    {
        long[] rest = _shape[1..];
        long size = rest.Aggregate(1L, (a, d) => a * d);
        return BlockQuantization.Dequantize(_codes, _absmax, Kind, BlockSize, index * size, size).view(rest);
    }
}
