namespace YingHub.Moe.Rewards;

/// <summary>
/// Names of the components in <see cref="RewardResult.Components"/>. Each value is in 0..1; scores are added to the
/// total with their weight, penalties (<see cref="ModernPenalty"/>, <see cref="RepetitionPenalty"/>) subtracted.
/// </summary>
public static class RewardComponentNames
{
    /// <summary>Score: rhyme scheme (ABAB / AABB quatrains, couplets) by perfect rhyme of line-end words.</summary>
    public const string Rhyme = "rhyme";

    /// <summary>Score: mean fit of the lines to iambic pentameter.</summary>
    public const string Meter = "meter";

    /// <summary>Score: Early Modern English markers per line, saturating.</summary>
    public const string Keywords = "keywords";

    /// <summary>Score: closeness of words per line to the target.</summary>
    public const string LineLength = "line_length";

    /// <summary>Score: coherence from the perplexity under a language model; only present when a scorer is supplied.</summary>
    public const string Coherence = "coherence";

    /// <summary>Penalty: modern vocabulary per line, saturating.</summary>
    public const string ModernPenalty = "modern_penalty";

    /// <summary>Penalty: repeated lines and repeated n-grams.</summary>
    public const string RepetitionPenalty = "repetition_penalty";

    /// <summary>Whether the named component is subtracted from the total.</summary>
    public static bool IsPenalty(string name) => name is ModernPenalty or RepetitionPenalty;
}
