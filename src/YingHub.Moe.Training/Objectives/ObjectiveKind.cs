namespace YingHub.Moe.Training.Objectives;

/// <summary>What one objective of a <see cref="ObjectiveMixtureOptions">mixture</see> makes of a block of text.</summary>
public enum ObjectiveKind
{
    /// <summary>Next-token prediction over the whole block (GPT's objective).</summary>
    Causal,

    /// <summary>
    /// Prefix LM (UL2's S-denoiser): a random-length prefix is context (attended both ways when
    /// <see cref="ObjectiveOptions.BidirectionalPrefix"/>), the rest is predicted; loss on the rest only.
    /// </summary>
    PrefixLm,

    /// <summary>
    /// Span corruption in decoder-only form (T5's objective; UL2's R- and X-denoisers): spans of the input replaced by
    /// sentinel tokens, followed by the targets (each sentinel and the span it replaced); loss on the targets only.
    /// </summary>
    SpanCorruption,
}
