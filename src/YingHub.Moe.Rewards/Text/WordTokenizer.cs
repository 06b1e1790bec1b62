namespace YingHub.Moe.Rewards.Text;

/// <summary>A word of a text: its start and length in the normalised text.</summary>
/// <param name="Start">Index of the first character.</param>
/// <param name="Length">Number of characters.</param>
internal readonly record struct TokenSpan(int Start, int Length);

/// <summary>
/// Splits normalised text (see <see cref="WordNormalizer"/>) into words: runs of letters and digits, joined by inner
/// apostrophes (<c>lov'd</c>, <c>summer's</c>), with a leading apostrophe kept before a letter (<c>'tis</c>). A
/// trailing apostrophe, hyphens and all other punctuation separate words. The rewards' own notion of a word, public so
/// that other scorers (RL rewards, collapse metrics) count the same words.
/// </summary>
public static class WordTokenizer
{
    /// <summary>Appends the words of <paramref name="text"/>, offset by <paramref name="offset"/>, to <paramref name="tokens"/>.</summary>
    internal static void Tokenize(ReadOnlySpan<char> text, int offset, List<TokenSpan> tokens)
    {
        int i = 0;
        while (i < text.Length)
        {
            bool leadingApostrophe = text[i] == '\'' && i + 1 < text.Length && char.IsLetter(text[i + 1])
                && (i == 0 || !IsWordChar(text[i - 1]));
            if (!IsWordChar(text[i]) && !leadingApostrophe)
            {
                i++;
                continue;
            }

            int start = i++;
            while (i < text.Length)
            {
                if (IsWordChar(text[i])) i++;
                else if (text[i] == '\'' && i + 1 < text.Length && IsWordChar(text[i + 1])) i++;
                else break;
            }

            tokens.Add(new TokenSpan(offset + start, i - start));
        }
    }

    /// <summary>
    /// The words of <paramref name="text"/>, normalised: lower-cased (invariant), typographic apostrophes as <c>'</c>
    /// (<c>Summer’s 'Tis</c> → <c>summer's</c>, <c>'tis</c>).
    /// </summary>
    public static string[] Words(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string normalized = WordNormalizer.Normalize(text);
        var tokens = new List<TokenSpan>();
        Tokenize(normalized, 0, tokens);
        return tokens.Select(t => normalized.Substring(t.Start, t.Length)).ToArray();
    }

    private static bool IsWordChar(char c) => char.IsLetterOrDigit(c);
}
