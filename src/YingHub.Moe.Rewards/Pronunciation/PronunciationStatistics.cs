namespace YingHub.Moe.Rewards.Pronunciation;

/// <summary>How often words were found in the lexicon and how often the rule-based fallback had to guess.</summary>
/// <param name="WordLookups">Words pronounced since the scorer was created (or last reset).</param>
/// <param name="FallbackWords">Of those, words missing from the lexicon, pronounced by spelling rules.</param>
public sealed record PronunciationStatistics(long WordLookups, long FallbackWords)
{
    /// <summary><see cref="FallbackWords"/> / <see cref="WordLookups"/>, or 0 before the first lookup.</summary>
    public double FallbackRate => WordLookups == 0 ? 0 : (double)FallbackWords / WordLookups;
}
