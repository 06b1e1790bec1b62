namespace YingHub.Moe.Rewards.Text;

/// <summary>Case folding and apostrophe unification shared by the lexicon, the word lists and the tokenizer.</summary>
internal static class WordNormalizer
{
    /// <summary>Lower-cases (invariant) and maps typographic apostrophes (’ ‘ ʼ `) to <c>'</c>.</summary>
    public static char Normalize(char c) => c switch
    {
        '\u2019' or '\u2018' or '\u02BC' or '`' => '\'',
        _ => char.ToLowerInvariant(c),
    };

    /// <summary>The normalised form of a whole string (see <see cref="Normalize(char)"/>), trimmed.</summary>
    public static string Normalize(string text)
    {
        ReadOnlySpan<char> trimmed = text.AsSpan().Trim();
        return string.Create(trimmed.Length, trimmed.ToString(), static (span, source) =>
        {
            for (int i = 0; i < span.Length; i++) span[i] = Normalize(source[i]);
        });
    }
}
