using YingHub.Moe.Rewards.Text;

namespace YingHub.Moe.Rl.Rewards;

/// <summary>
/// Small built-in rewards, each a <see cref="FunctionReward"/> in 0..1: targets for RL runs that must move fast (a
/// letter's share), a diversity term to add to a task reward (distinct words), and a length term. Words are the rewards'
/// own (<see cref="WordTokenizer.Words"/>).
/// </summary>
public static class TextRewards
{
    /// <summary>The name of <see cref="LetterShare"/>'s reward and component.</summary>
    public const string LetterShareName = "letter_share";

    /// <summary>The name of <see cref="DistinctWords"/>'s reward and component.</summary>
    public const string DistinctWordsName = "distinct_words";

    /// <summary>The name of <see cref="Length"/>'s reward and component.</summary>
    public const string LengthName = "length";

    /// <summary>
    /// The share of the text's letters that are <paramref name="letter"/>, case-insensitively; 0 for a text without
    /// letters. Non-letters (spaces, punctuation, digits) are not counted, so padding a text with spaces cannot move it.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="letter"/> is not a letter.</exception>
    public static FunctionReward LetterShare(char letter)
    {
        if (!char.IsLetter(letter)) throw new ArgumentException($"'{letter}' (U+{(int)letter:X4}) is not a letter.", nameof(letter));
        char target = char.ToLowerInvariant(letter);
        return new FunctionReward(LetterShareName, text =>
        {
            int letters = 0, hits = 0;
            foreach (char c in text)
            {
                if (!char.IsLetter(c)) continue;
                letters++;
                if (char.ToLowerInvariant(c) == target) hits++;
            }

            return letters == 0 ? 0 : hits / (double)letters;
        });
    }

    /// <summary>Distinct words / words (case-insensitive, see <see cref="WordTokenizer.Words"/>); 0 for a text without words.</summary>
    public static FunctionReward DistinctWords() => new(DistinctWordsName, text =>
    {
        string[] words = WordTokenizer.Words(text);
        return words.Length == 0 ? 0 : words.Distinct(StringComparer.Ordinal).Count() / (double)words.Length;
    });

    /// <summary>
    /// Closeness of the word count w to <paramref name="targetWords"/> t: <c>max(0, 1 − |w − t| / t)</c>, so 1 at the
    /// target, 0 for no words and from twice the target on.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="targetWords"/> is below 1.</exception>
    public static FunctionReward Length(int targetWords)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(targetWords, 1);
        return new FunctionReward(LengthName, text => Math.Max(0, 1 - Math.Abs(WordTokenizer.Words(text).Length - targetWords) / (double)targetWords));
    }
}
