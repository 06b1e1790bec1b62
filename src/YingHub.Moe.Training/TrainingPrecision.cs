namespace YingHub.Moe.Training;

/// <summary>The arithmetic of a training step (TorchSharp has no autocast or GradScaler; the library provides both).</summary>
public enum TrainingPrecision
{
    /// <summary>Everything in float32.</summary>
    Fp32,

    /// <summary>
    /// Float32 master weights and optimizer state; matrix products of the library's modules run in bfloat16 under an
    /// autocast scope; softmax, norms and losses stay in float32. No loss scaling (bfloat16 has float32's range).
    /// </summary>
    Bf16,

    /// <summary>As <see cref="Bf16"/> with float16 products, plus dynamic loss scaling (skip the step and back off on inf/NaN gradients).</summary>
    Fp16,
}
