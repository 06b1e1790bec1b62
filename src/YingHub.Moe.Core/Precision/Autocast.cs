using TorchSharp;
using YingHub.Moe.Core.Kernels;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Precision;

/// <summary>
/// Automatic mixed precision for the library's own modules (TorchSharp has no <c>torch.autocast</c>). Inside
/// <see cref="Enable"/>, every matrix product of the model (attention projections, experts, dense FFNs, the LM head)
/// casts its float32 input and weights to the scope's type (bfloat16 or float16) and runs there; the result keeps the
/// low-precision type, as under PyTorch's autocast. What the scope leaves in float32: the parameters themselves (the
/// master copy the optimizer updates; their gradients come back in float32 through the cast), the residual stream
/// (a low-precision branch added to it is promoted to float32), layer norms, the router (logits, softmax and top-k:
/// routing decisions are precision-sensitive), the logits handed to the loss and the losses.
/// <para>
/// The state is per thread, like PyTorch's: a scope covers the forward pass on the thread that opened it. Scopes nest;
/// disposing one restores the state before it. The backward pass needs no scope (the casts are recorded in the graph).
/// </para>
/// </summary>
public static class Autocast
{
    [ThreadStatic] private static ScalarType? _current;

    /// <summary>The type matrix products run in on this thread, or null outside any enabled scope.</summary>
    public static ScalarType? CurrentType => _current;

    /// <summary>Runs the library's matrix products in <paramref name="dtype"/> until the returned scope is disposed.</summary>
    /// <param name="dtype"><see cref="ScalarType.BFloat16"/> or <see cref="ScalarType.Float16"/>.</param>
    /// <exception cref="ArgumentException"><paramref name="dtype"/> is another type.</exception>
    public static IDisposable Enable(ScalarType dtype)
    {
        if (dtype is not (ScalarType.BFloat16 or ScalarType.Float16))
            throw new ArgumentException($"dtype = {dtype} is not an autocast type; allowed: BFloat16, Float16.", nameof(dtype));
        return new Scope(dtype);
    }

    /// <summary>Runs in the parameters' own precision until the returned scope is disposed (e.g. a region that must stay float32).</summary>
    public static IDisposable Disable() => new Scope(null);

    /// <summary>
    /// <c>x @ weightᵀ + bias</c> in the current autocast type (x (..., in), weight (out, in), bias (out)); outside a
    /// scope, or for inputs that are not float32, <c>nn.functional.linear</c>. Outside a scope and without autograd, a
    /// single float32 row on the CPU (a decoding step) runs in the library's one-row kernel instead, which streams the
    /// weight faster than BLAS (<see cref="RowProduct"/>), and a few rows (a batched decoding step) in the few-row
    /// kernels (<see cref="FewRows"/>).
    /// </summary>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias = null)
    {
        if (_current is null && (RowProduct.Linear(x, weight, bias) ?? FewRows.Linear(x, weight, bias)) is { } row) return row;
        (x, weight, bias) = InAutocastType(x, weight, bias);
        return nn.functional.linear(x, weight, bias);
    }

    /// <summary>
    /// <c>x @ weight + bias</c> with the weight stored input-major (x (N, in), weight (in, out), bias (out)): one
    /// <c>addmm</c> (or <c>mm</c>), in the current autocast type as <see cref="Linear"/>; one row in inference on the
    /// CPU runs in the one-row kernel, and a few rows in the few-row kernels, as there.
    /// </summary>
    public static Tensor MatMul(Tensor x, Tensor weight, Tensor? bias = null)
    {
        if (_current is null && (RowProduct.MatMul(x, weight, bias) ?? FewRows.MatMul(x, weight, bias)) is { } row) return row;
        (x, weight, bias) = InAutocastType(x, weight, bias);
        return bias is null ? x.mm(weight) : torch.addmm(bias, x, weight, beta: 1, alpha: 1);
    }

    /// <summary>
    /// <paramref name="tensor"/> in the current autocast type when it is float32 (a differentiable cast), else itself.
    /// Cast a stacked weight once and slice the result, rather than casting every slice.
    /// </summary>
    public static Tensor CastFloat(Tensor tensor) =>
        _current is { } dtype && tensor.dtype == ScalarType.Float32 ? tensor.to(dtype) : tensor;

    private static Tensor Cast(Tensor t, ScalarType dtype) => t.dtype == dtype ? t : t.to(dtype);

    /// <summary>A product's operands in the current autocast type when x is float32 or already that type; otherwise as they are.</summary>
    private static (Tensor X, Tensor Weight, Tensor? Bias) InAutocastType(Tensor x, Tensor weight, Tensor? bias) =>
        _current is { } dtype && (x.dtype == ScalarType.Float32 || x.dtype == dtype)
            ? (Cast(x, dtype), Cast(weight, dtype), bias is null ? null : Cast(bias, dtype))
            : (x, weight, bias);

    private sealed class Scope : IDisposable
    {
        private readonly ScalarType? _previous;
        private readonly int _thread = Environment.CurrentManagedThreadId;
        private bool _disposed;

        public Scope(ScalarType? dtype)
        {
            _previous = _current;
            _current = dtype;
        }

        public void Dispose()
        {
            if (_disposed) return;
            if (Environment.CurrentManagedThreadId != _thread)
                throw new InvalidOperationException("An autocast scope must be disposed on the thread that opened it.");
            _disposed = true;
            _current = _previous;
        }
    }
}
