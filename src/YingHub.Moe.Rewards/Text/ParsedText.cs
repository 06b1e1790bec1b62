using System.Buffers;

namespace YingHub.Moe.Rewards.Text;

/// <summary>A line of verse: a text line with at least one word.</summary>
/// <param name="Start">Start of the line in the text.</param>
/// <param name="Length">Length of the line.</param>
/// <param name="FirstToken">Index of its first word in <see cref="ParsedText.Tokens"/>.</param>
/// <param name="TokenCount">Number of words (at least one).</param>
/// <param name="Stanza">Index of its stanza; lines without words (blank lines) separate stanzas.</param>
internal readonly record struct VerseLine(int Start, int Length, int FirstToken, int TokenCount, int Stanza);

/// <summary>
/// A text split once into verse lines and words, shared by every reward component. Words are normalised
/// (lower-case, one apostrophe); each distinct word has an integer id for repetition counting.
/// </summary>
internal sealed class ParsedText
{
    private static readonly SearchValues<char> LineBreaks = SearchValues.Create("\r\n");

    private ParsedText(string original, string normalized, List<VerseLine> lines, List<TokenSpan> tokens, int[] ids)
    {
        Original = original;
        Normalized = normalized;
        Lines = lines;
        Tokens = tokens;
        TokenIds = ids;
    }

    /// <summary>The text as given.</summary>
    public string Original { get; }

    /// <summary>The text lower-cased with apostrophes unified; same length and indices as <see cref="Original"/>.</summary>
    public string Normalized { get; }

    /// <summary>The verse lines in order.</summary>
    public IReadOnlyList<VerseLine> Lines { get; }

    /// <summary>Every word of every line, in order.</summary>
    public IReadOnlyList<TokenSpan> Tokens { get; }

    /// <summary>An id per word of <see cref="Tokens"/>; equal words have equal ids.</summary>
    public int[] TokenIds { get; }

    /// <summary>The normalised characters of word <paramref name="token"/>.</summary>
    public ReadOnlySpan<char> Word(int token)
    {
        TokenSpan span = Tokens[token];
        return Normalized.AsSpan(span.Start, span.Length);
    }

    /// <summary>Splits <paramref name="text"/> on line breaks (<c>\n</c>, <c>\r\n</c>, <c>\r</c>) and words.</summary>
    public static ParsedText Parse(string text)
    {
        string normalized = string.Create(text.Length, text, static (span, source) =>
        {
            for (int i = 0; i < span.Length; i++) span[i] = WordNormalizer.Normalize(source[i]);
        });
        var lines = new List<VerseLine>();
        var tokens = new List<TokenSpan>();
        int stanza = 0;
        bool stanzaHasLines = false;
        int start = 0;
        while (start <= normalized.Length)
        {
            int end = normalized.AsSpan(start).IndexOfAny(LineBreaks);
            end = end < 0 ? normalized.Length : start + end;
            int first = tokens.Count;
            WordTokenizer.Tokenize(normalized.AsSpan(start, end - start), start, tokens);
            if (tokens.Count > first)
            {
                lines.Add(new VerseLine(start, end - start, first, tokens.Count - first, stanza));
                stanzaHasLines = true;
            }
            else if (stanzaHasLines)
            {
                stanza++;
                stanzaHasLines = false;
            }

            start = end + (IsCrLf(normalized, end) ? 2 : 1);
        }

        return new ParsedText(text, normalized, lines, tokens, AssignIds(normalized, tokens));
    }

    private static bool IsCrLf(string text, int index) =>
        index + 1 < text.Length && text[index] == '\r' && text[index + 1] == '\n';

    private static int[] AssignIds(string normalized, List<TokenSpan> tokens)
    {
        var ids = new int[tokens.Count];
        var known = new Dictionary<string, int>(StringComparer.Ordinal);
        var lookup = known.GetAlternateLookup<ReadOnlySpan<char>>();
        for (int i = 0; i < ids.Length; i++)
        {
            ReadOnlySpan<char> word = normalized.AsSpan(tokens[i].Start, tokens[i].Length);
            if (!lookup.TryGetValue(word, out int id))
            {
                id = known.Count;
                lookup[word] = id;
            }

            ids[i] = id;
        }

        return ids;
    }
}
