namespace YingHub.Moe.Rewards.Pronunciation;

/// <summary>
/// How a word sounds: either its pronunciations in the lexicon (<see cref="FirstVariant"/> ≥ 0, alternates chained by
/// <see cref="PronunciationLexicon.NextVariant"/>), or one rule-based guess (<see cref="FallbackSyllables"/> syllables,
/// primary stress on <see cref="FallbackStress"/>, all others unstressed).
/// </summary>
/// <param name="FirstVariant">The first lexicon pronunciation, or -1 for a fallback guess.</param>
/// <param name="FallbackSyllables">Syllables of the guess (0 for a lexicon word).</param>
/// <param name="FallbackStress">0-based syllable with primary stress in the guess.</param>
internal readonly record struct WordSounds(int FirstVariant, int FallbackSyllables, int FallbackStress)
{
    /// <summary>Whether the word was guessed by <see cref="RuleBasedPronouncer"/>.</summary>
    public bool IsFallback => FirstVariant < 0;
}
