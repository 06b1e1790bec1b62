using System.Text;
using YingHub.Moe.Rewards.Text;

namespace YingHub.Moe.Rewards.Pronunciation;

/// <summary>
/// A pronunciation lexicon in the format of the CMU Pronouncing Dictionary: one <c>word  PH1 ON0 ES</c> entry a line
/// (ARPABET phonemes, vowels carrying stress 0, 1 or 2), alternates written <c>word(2)</c>, and <c>#</c> or
/// <c>;;;</c> comments. Lookups are case-insensitive and accept typographic apostrophes. Immutable and thread-safe
/// once loaded.
/// </summary>
/// <example>
/// <code>
/// var lexicon = PronunciationLexicon.Load("cmudict.dict");
/// lexicon.GetPronunciations("Day");   // ["D EY1"]
/// </code>
/// </example>
public sealed class PronunciationLexicon
{
    private readonly Dictionary<string, int> _heads;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _lookup;
    private readonly byte[] _phonemes;
    private readonly int[] _starts;
    private readonly int[] _next;

    internal PronunciationLexicon(Dictionary<string, int> heads, byte[] phonemes, int[] starts, int[] next)
    {
        _heads = heads;
        _lookup = heads.GetAlternateLookup<ReadOnlySpan<char>>();
        _phonemes = phonemes;
        _starts = starts;
        _next = next;
    }

    /// <summary>A lexicon without entries: every word then goes to the rule-based fallback.</summary>
    public static PronunciationLexicon Empty { get; } =
        new(new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase), [], [0], []);

    /// <summary>The number of distinct words.</summary>
    public int WordCount => _heads.Count;

    /// <summary>The number of pronunciations, alternates included.</summary>
    public int PronunciationCount => _next.Length;

    /// <summary>Loads a lexicon file in the CMU Pronouncing Dictionary format (UTF-8 or ASCII).</summary>
    /// <param name="path">The dictionary file, e.g. <c>cmudict.dict</c>.</param>
    /// <exception cref="ArgumentException"><paramref name="path"/> is null or empty.</exception>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="PronunciationDictionaryFormatException">A line holds an unknown phoneme or no phonemes; the one-line message names the file, the line number and the line.</exception>
    public static PronunciationLexicon Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return PronouncingDictionaryParser.Parse(File.ReadAllBytes(path), path);
    }

    /// <summary>Loads a lexicon in the CMU Pronouncing Dictionary format from a stream (read to its end, not closed).</summary>
    /// <param name="stream">A readable stream of UTF-8 or ASCII text.</param>
    /// <exception cref="ArgumentNullException"><paramref name="stream"/> is null.</exception>
    /// <exception cref="PronunciationDictionaryFormatException">A line holds an unknown phoneme or no phonemes; the one-line message names the file, the line number and the line.</exception>
    public static PronunciationLexicon Load(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (stream is MemoryStream memory && memory.TryGetBuffer(out ArraySegment<byte> buffer))
        {
            int position = (int)memory.Position;
            memory.Position = memory.Length;
            return PronouncingDictionaryParser.Parse(buffer.AsSpan(position), nameof(stream));
        }

        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return PronouncingDictionaryParser.Parse(copy.GetBuffer().AsSpan(0, (int)copy.Length), nameof(stream));
    }

    /// <summary>Whether the lexicon holds <paramref name="word"/> (case-insensitive).</summary>
    /// <exception cref="ArgumentNullException"><paramref name="word"/> is null.</exception>
    public bool Contains(string word)
    {
        ArgumentNullException.ThrowIfNull(word);
        return FirstVariant(WordNormalizer.Normalize(word)) >= 0;
    }

    /// <summary>
    /// The pronunciations of <paramref name="word"/> in dictionary order, each as ARPABET text such as
    /// <c>"K AH0 M P EH1 R"</c>; empty when the word is unknown.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="word"/> is null.</exception>
    public IReadOnlyList<string> GetPronunciations(string word)
    {
        ArgumentNullException.ThrowIfNull(word);
        var result = new List<string>();
        var text = new StringBuilder();
        for (int v = FirstVariant(WordNormalizer.Normalize(word)); v >= 0; v = NextVariant(v))
        {
            text.Clear();
            foreach (byte phoneme in Phonemes(v))
            {
                if (text.Length > 0) text.Append(' ');
                text.Append(Arpabet.Format(phoneme));
            }

            result.Add(text.ToString());
        }

        return result;
    }

    /// <summary>Every word, in file order.</summary>
    internal IEnumerable<string> Words => _heads.Keys;

    /// <summary>The first pronunciation of a word (lower-case or not), or -1 when it is unknown.</summary>
    internal int FirstVariant(ReadOnlySpan<char> word) => _lookup.TryGetValue(word, out int head) ? head : -1;

    /// <summary>The next alternate pronunciation after <paramref name="variant"/>, or -1.</summary>
    internal int NextVariant(int variant) => _next[variant];

    /// <summary>The packed phonemes (see <see cref="Arpabet"/>) of one pronunciation.</summary>
    internal ReadOnlySpan<byte> Phonemes(int variant) =>
        _phonemes.AsSpan(_starts[variant], _starts[variant + 1] - _starts[variant]);
}
