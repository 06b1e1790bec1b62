using static TorchSharp.torch;

namespace YingHub.Moe.Core.Modules;

/// <summary>A causal language model seen from outside: token ids in, next-token logits out (for scoring and sampling).</summary>
public interface ICausalLanguageModel
{
    /// <summary>Maximum positions per forward pass.</summary>
    int ContextLength { get; }

    /// <summary>Number of token ids.</summary>
    int VocabSize { get; }

    /// <summary>The device inputs must be on.</summary>
    Device Device { get; }

    /// <summary>Logits (B, T, V) of ids (B, T), T ≤ <see cref="ContextLength"/>; the caller owns the result.</summary>
    Tensor Logits(Tensor inputIds);
}
