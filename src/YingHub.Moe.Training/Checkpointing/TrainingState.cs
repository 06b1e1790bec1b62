using YingHub.Moe.Training.Optimization;
using YingHub.Moe.Training.Routing;

namespace YingHub.Moe.Training.Checkpointing;

/// <summary>
/// What a resumable checkpoint records besides the weights, the optimizer state and the random generator state
/// (<c>trainer_state.json</c>). <see cref="CheckpointStore.Save"/> fills <see cref="LossScaler"/> and
/// <see cref="Frozen"/> itself; a loop sets the rest (a custom loop keeps its own counters in <see cref="Extra"/>).
/// </summary>
public sealed record TrainingState
{
    /// <summary>Optimizer steps done.</summary>
    public long Step { get; init; }

    /// <summary>Blocks the training sampler has drawn (<c>BlockSampler.Drawn</c>).</summary>
    public long TrainBlocks { get; init; }

    /// <summary>Blocks the validation sampler has drawn.</summary>
    public long ValidationBlocks { get; init; }

    /// <summary>The fp16 loss scaler's state, when there is one.</summary>
    public LossScalerState? LossScaler { get; init; }

    /// <summary>The early-stopping state, when early stopping is on.</summary>
    public EarlyStoppingState? EarlyStopping { get; init; }

    /// <summary>The router's k at the save (changed at run time by utilization-driven top-k).</summary>
    public int? TopK { get; init; }

    /// <summary>The top-k controller's state (its cooldown), when adaptive top-k is on.</summary>
    public TopKControllerState? TopKController { get; init; }

    /// <summary>The names of the frozen parameters (<c>requires_grad = false</c>); resuming requires the same set.</summary>
    public IReadOnlyList<string>? Frozen { get; init; }

    /// <summary>The mean training LM loss at the last evaluation, if any.</summary>
    public double? TrainLoss { get; init; }

    /// <summary>The mean validation LM loss at the last evaluation, if any.</summary>
    public double? ValidationLoss { get; init; }

    /// <summary>The SHA-256 of each file, as checkpoints recorded it before <c>checksums.sha256</c> existed (read, never written).</summary>
    public Dictionary<string, string>? Sha256 { get; init; }

    /// <summary>Any other state of a custom loop, by name.</summary>
    public Dictionary<string, string>? Extra { get; init; }
}
