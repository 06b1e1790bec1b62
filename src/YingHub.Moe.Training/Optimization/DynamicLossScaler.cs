using TorchSharp.Modules;
using YingHub.Moe.Core.Configuration;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Optimization;

/// <summary>The resumable state of a <see cref="DynamicLossScaler"/> (saved with the checkpoint).</summary>
/// <param name="Scale">The current loss scale.</param>
/// <param name="GoodSteps">Consecutive finite steps since the last change of scale.</param>
/// <param name="SkippedSteps">Steps skipped over the run because of inf/NaN gradients.</param>
public sealed record LossScalerState(double Scale, int GoodSteps, long SkippedSteps);

/// <summary>
/// Dynamic loss scaling for float16 training (PyTorch's <c>GradScaler</c>, which TorchSharp lacks): the loss is
/// multiplied by a scale before <c>backward</c> so small float16 gradients do not flush to zero; the gradients are
/// divided by it again before clipping and the optimizer step. A step whose gradients hold an inf or NaN is skipped
/// (the gradients are overflowed, not information) and the scale backs off; after
/// <see cref="DynamicLossScalerOptions.GrowthInterval"/> finite steps in a row it grows again.
/// <para>
/// Use: <c>ScaleLoss(loss).backward()</c>; <c>if (UnscaleGradients(parameters)) { clip; optimizer.step(); }</c>;
/// <c>Update(finite)</c>. Deciding to skip needs one host read per step, as in PyTorch.
/// </para>
/// </summary>
public sealed class DynamicLossScaler
{
    private readonly DynamicLossScalerOptions _options;
    private LossScalerState _state;

    /// <summary>Creates a scaler from validated options (the values are copied).</summary>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    public DynamicLossScaler(DynamicLossScalerOptions? options = null)
    {
        options ??= new DynamicLossScalerOptions();
        options.ThrowIfInvalid();
        _options = new DynamicLossScalerOptions
        {
            InitialScale = options.InitialScale, GrowthFactor = options.GrowthFactor, BackoffFactor = options.BackoffFactor,
            GrowthInterval = options.GrowthInterval, MinScale = options.MinScale,
        };
        _state = new LossScalerState(options.InitialScale, 0, 0);
    }

    /// <summary>The current loss scale.</summary>
    public double Scale => _state.Scale;

    /// <summary>The state, for checkpoints.</summary>
    public LossScalerState State => _state;

    /// <summary>Restores a state saved from <see cref="State"/>.</summary>
    /// <exception cref="ArgumentException">The state is inconsistent.</exception>
    public void Restore(LossScalerState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (!(double.IsFinite(state.Scale) && state.Scale > 0))
            throw new ArgumentException($"state.Scale = {state.Scale} is invalid; allowed: finite and > 0.", nameof(state));
        if (state.GoodSteps < 0 || state.SkippedSteps < 0)
            throw new ArgumentException($"state = {state} is invalid; allowed: non-negative counts.", nameof(state));
        _state = state;
    }

    /// <summary><paramref name="loss"/> × the scale (a new tensor in the caller's dispose scope).</summary>
    public Tensor ScaleLoss(Tensor loss)
    {
        ArgumentNullException.ThrowIfNull(loss);
        return loss.mul(_state.Scale);
    }

    /// <summary>
    /// Divides every gradient of <paramref name="parameters"/> by the scale, in place, and says whether all of them
    /// are finite (one host read). When they are not, the caller must skip the optimizer step.
    /// </summary>
    public bool UnscaleGradients(IEnumerable<Parameter> parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        double inverse = 1.0 / _state.Scale;
        var finite = new List<Tensor>();
        foreach (var p in parameters)
        {
            if (p.grad is not { } grad) continue;
            grad.mul_(inverse);
            finite.Add(isfinite(grad).all()); // () bool
        }

        return finite.Count == 0 || stack(finite).all().item<bool>();
    }

    /// <summary>Adjusts the scale after a step: back off (and count a skipped step) when it was not finite, grow after enough finite ones.</summary>
    /// <param name="finite">What <see cref="UnscaleGradients"/> returned for this step.</param>
    /// <returns>The new scale.</returns>
    public double Update(bool finite)
    {
        var s = _state;
        if (!finite)
        {
            _state = new LossScalerState(Math.Max(s.Scale * _options.BackoffFactor, _options.MinScale), 0, s.SkippedSteps + 1);
        }
        else if (s.GoodSteps + 1 >= _options.GrowthInterval)
        {
            double grown = s.Scale * _options.GrowthFactor;
            _state = new LossScalerState(double.IsFinite(grown) && grown <= float.MaxValue ? grown : s.Scale, 0, s.SkippedSteps);
        }
        else
        {
            _state = s with { GoodSteps = s.GoodSteps + 1 };
        }

        return _state.Scale;
    }
}
