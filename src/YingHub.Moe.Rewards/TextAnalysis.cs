namespace YingHub.Moe.Rewards;

/// <summary>The detailed analysis of a text: the reward, the rhyme scheme and every line's meter.</summary>
/// <param name="Reward">The same result <see cref="IRewardFunction.Score"/> returns.</param>
/// <param name="RhymeScheme">
/// Letters per line, four-line groups (and a stanza's shorter remainder) separated by spaces, e.g.
/// <c>ABAB CDCD EFEF GG</c>; lines with the same letter rhyme within their group. Empty for a text without lines.
/// </param>
/// <param name="Lines">One entry per verse line (a line with at least one word), in order.</param>
/// <param name="FallbackWords">Words of this text missing from the lexicon, pronounced by spelling rules.</param>
public sealed record TextAnalysis(RewardResult Reward, string RhymeScheme, IReadOnlyList<LineAnalysis> Lines, int FallbackWords);

/// <summary>The analysis of one verse line.</summary>
/// <param name="Text">The line as written, trimmed.</param>
/// <param name="Words">Number of words.</param>
/// <param name="Syllables">Syllables under the pronunciations that best fit the meter.</param>
/// <param name="Stress">
/// Stress per syllable as the best alignment realises it, <c>'1'</c> stressed and <c>'0'</c> not: a perfect iambic
/// pentameter line reads <c>0101010101</c>. Polysyllables keep their lexical stress; monosyllables and secondary
/// stresses take the stress of their metrical position.
/// </param>
/// <param name="Meter">0..1 fit to iambic pentameter (1 = perfect).</param>
/// <param name="RhymeLabel">This line's letter in <see cref="TextAnalysis.RhymeScheme"/>.</param>
public sealed record LineAnalysis(string Text, int Words, int Syllables, string Stress, double Meter, char RhymeLabel);
