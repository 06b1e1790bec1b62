using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Training.Routing;

/// <summary>Settings of <see cref="TopKController"/>; <see cref="GetValidationErrors"/> names every bad field.</summary>
public sealed class TopKControllerOptions : IValidatableOptions
{
    /// <summary>Lower k when the utilization is above this, (0, 1].</summary>
    public double High { get; set; } = 0.9;

    /// <summary>Raise k when the utilization is below this, [0, High).</summary>
    public double Low { get; set; } = 0.5;

    /// <summary>
    /// Smallest k, [1, MaxK]. The default is 2: at k = 1 with renormalised top-k weights
    /// (<c>MoeModelOptions.NormalizeTopKWeights</c>, HF's <c>norm_topk_prob</c>) the single gate weight is identically 1,
    /// so the LM loss no longer reaches the router; the trainer refuses MinK = 1 with renormalisation.
    /// </summary>
    public int MinK { get; set; } = 2;

    /// <summary>Largest k, [MinK, E] (checked against the model by the trainer).</summary>
    public int MaxK { get; set; } = 4;

    /// <summary>Steps after a change during which k stays put, [0, 1,000,000].</summary>
    public int Cooldown { get; set; } = 200;

    /// <inheritdoc />
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        errors.Require(High > 0 && High <= 1, nameof(High), High, "(0, 1]");
        errors.Require(Low >= 0 && Low < High, nameof(Low), Low, $"[0, High = {High})");
        errors.Require(MinK >= 1 && MinK <= MaxK, nameof(MinK), MinK, $"[1, MaxK = {MaxK}]");
        errors.Require(Cooldown is >= 0 and <= 1_000_000, nameof(Cooldown), Cooldown, "[0, 1000000]");
        return errors;
    }
}

/// <summary>The resumable state of a <see cref="TopKController"/> (saved with the checkpoint).</summary>
/// <param name="LastChange">The step of the last change of k (the cooldown counts from it), or null before any.</param>
public sealed record TopKControllerState(long? LastChange);

/// <summary>
/// Utilization-driven top-k (YingHub-v2): from the sliding-window expert utilization (the share of experts carrying
/// at least the threshold share of a fair load), lower k by one when utilization is above <see cref="TopKControllerOptions.High"/>
/// (the experts are well spread, so fewer per token suffice) and raise it by one when below
/// <see cref="TopKControllerOptions.Low"/> (too few experts are used), within [MinK, MaxK], at most once per cooldown.
/// </summary>
public sealed class TopKController
{
    private readonly TopKControllerOptions _options;
    private long _lastChange = long.MinValue / 2;

    /// <summary>A controller with validated <paramref name="options"/>.</summary>
    /// <exception cref="ArgumentException">An option is out of range; the message lists every such field.</exception>
    public TopKController(TopKControllerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.ThrowIfInvalid(nameof(options));
        _options = options;
    }

    /// <summary>The state, for checkpoints.</summary>
    public TopKControllerState State => new(_lastChange == long.MinValue / 2 ? null : _lastChange);

    /// <summary>Restores a state saved from <see cref="State"/> (on resume), cooldown included.</summary>
    public void Restore(TopKControllerState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        _lastChange = state.LastChange ?? long.MinValue / 2;
    }

    /// <summary>The k to use from <paramref name="step"/> on, or null to keep <paramref name="currentK"/>.</summary>
    public int? Update(long step, double utilization, int currentK)
    {
        if (step - _lastChange < _options.Cooldown || double.IsNaN(utilization)) return null;
        int k = utilization > _options.High ? currentK - 1 : utilization < _options.Low ? currentK + 1 : currentK;
        k = Math.Clamp(k, _options.MinK, _options.MaxK);
        if (k == currentK) return null;
        _lastChange = step;
        return k;
    }
}
