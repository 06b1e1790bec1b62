using TorchSharp;
using YingHub.Moe.Core.Precision;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Modules;

/// <summary>
/// Detached views of one parameter for inference (evaluation, decoding), made once and kept: they share the
/// parameter's storage, so in-place updates (optimizer steps, loaded weights) show through, and they are rebuilt when
/// the parameter object is replaced (e.g. a move to another device). Used where a forward would otherwise slice or
/// transpose a weight on every call. Not thread-safe: one forward at a time per model.
/// </summary>
internal sealed class InferenceViews : IDisposable
{
    private readonly Func<Tensor, Tensor[]> _make;
    private Tensor[]? _views;
    private object? _of;
    private IntPtr _handle;

    /// <param name="make">The views of the (detached) parameter, e.g. <c>w => w.unbind(0)</c>.</param>
    public InferenceViews(Func<Tensor, Tensor[]> make) => _make = make;

    /// <summary>Inference: no autograd and no autocast (under autocast the weights are cast per call instead).</summary>
    public static bool Active => !torch.is_grad_enabled() && Autocast.CurrentType is null;

    /// <summary>The views of <paramref name="parameter"/> (null for a null parameter); call only when <see cref="Active"/>.</summary>
    public Tensor[]? Of(Tensor? parameter)
    {
        if (parameter is null) return null;
        if (!ReferenceEquals(_of, parameter) || _handle != parameter.Handle || _views is null)
        {
            Dispose();
            using (torch.no_grad())
            using (var detached = parameter.detach())
            {
                _views = _make(detached).Select(v => v.DetachFromDisposeScope()).ToArray();
            }

            (_of, _handle) = (parameter, parameter.Handle);
        }

        return _views;
    }

    /// <summary>Frees the views (the parameter is untouched).</summary>
    public void Dispose()
    {
        foreach (var v in _views ?? []) v.Dispose();
        (_views, _of) = (null, null);
    }
}
