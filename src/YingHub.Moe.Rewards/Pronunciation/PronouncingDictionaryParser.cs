using System.Text;

namespace YingHub.Moe.Rewards.Pronunciation;

/// <summary>
/// Parses the CMU Pronouncing Dictionary format from bytes in one pass, without a string per phoneme: word keys are
/// the only strings allocated, phonemes go into one packed byte pool (see <see cref="Arpabet"/>), and alternates of
/// a word are chained in file order.
/// </summary>
internal static class PronouncingDictionaryParser
{
    private const int LettersInAlphabet = 26;
    private const int MaxWordChars = 256;
    private const int AverageBytesPerPhoneme = 3;

    /// <summary>Symbol index by its one or two letters: <c>(first - 'A') * 27 + (second - 'A' or 26)</c>.</summary>
    private static readonly sbyte[] SymbolTable = BuildSymbolTable();

    public static PronunciationLexicon Parse(ReadOnlySpan<byte> data, string source)
    {
        int lineEstimate = data.Count((byte)'\n') + 1;
        var heads = new Dictionary<string, int>(lineEstimate, StringComparer.OrdinalIgnoreCase);
        var lookup = heads.GetAlternateLookup<ReadOnlySpan<char>>();
        var pool = new List<byte>(data.Length / AverageBytesPerPhoneme);
        var starts = new List<int>(lineEstimate + 1) { 0 };
        var next = new List<int>(lineEstimate);
        var tails = new List<int>(lineEstimate);
        Span<char> wordChars = stackalloc char[MaxWordChars];
        int lineNumber = 0;

        while (!data.IsEmpty)
        {
            lineNumber++;
            int end = data.IndexOf((byte)'\n');
            ReadOnlySpan<byte> line = end < 0 ? data : data[..end];
            ReadOnlySpan<byte> raw = line.TrimEnd("\r"u8);
            data = end < 0 ? default : data[(end + 1)..];

            int comment = line.IndexOf((byte)'#');
            if (comment >= 0) line = line[..comment];
            line = line.Trim(" \t\r"u8);
            if (line.IsEmpty || line.StartsWith(";;;"u8)) continue;

            int space = line.IndexOfAny(" \t"u8);
            if (space < 0) throw Error(source, lineNumber, raw, "a word without phonemes");
            ReadOnlySpan<byte> word = StripAlternateSuffix(line[..space]);
            ReadOnlySpan<byte> phonemes = line[(space + 1)..];

            int variant = next.Count;
            int before = pool.Count;
            string? problem = ParsePhonemes(phonemes, pool);
            if (problem is not null) throw Error(source, lineNumber, raw, problem);
            if (pool.Count == before) throw Error(source, lineNumber, raw, "a word without phonemes");
            starts.Add(pool.Count);
            next.Add(-1);
            tails.Add(-1);

            int charCount = Encoding.UTF8.GetCharCount(word);
            Span<char> chars = charCount <= MaxWordChars ? wordChars[..charCount] : new char[charCount];
            Encoding.UTF8.GetChars(word, chars);
            if (lookup.TryGetValue(chars, out int head))
            {
                next[tails[head]] = variant;
                tails[head] = variant;
            }
            else
            {
                lookup[chars] = variant;
                tails[variant] = variant;
            }
        }

        return new PronunciationLexicon(heads, pool.ToArray(), starts.ToArray(), next.ToArray());
    }

    private static ReadOnlySpan<byte> StripAlternateSuffix(ReadOnlySpan<byte> word)
    {
        if (word.Length < 3 || word[^1] != (byte)')') return word;
        int open = word.LastIndexOf((byte)'(');
        if (open <= 0) return word;
        foreach (byte b in word[(open + 1)..^1])
        {
            if (b is < (byte)'0' or > (byte)'9') return word;
        }

        return word[..open];
    }

    /// <summary>Appends the packed phonemes of <paramref name="text"/> to <paramref name="pool"/>; returns the problem, or null.</summary>
    private static string? ParsePhonemes(ReadOnlySpan<byte> text, List<byte> pool)
    {
        while (true)
        {
            text = text.TrimStart(" \t"u8);
            if (text.IsEmpty) return null;
            int space = text.IndexOfAny(" \t"u8);
            ReadOnlySpan<byte> token = space < 0 ? text : text[..space];
            text = space < 0 ? default : text[space..];

            int stress = Arpabet.NoStress;
            ReadOnlySpan<byte> letters = token;
            if (token[^1] is >= (byte)'0' and <= (byte)'2')
            {
                stress = token[^1] - '0';
                letters = token[..^1];
            }

            int symbol = Lookup(letters);
            bool isVowel = symbol >= 0 && symbol < Arpabet.VowelCount;
            if (symbol < 0 || isVowel != (stress != Arpabet.NoStress))
            {
                return $"unknown phoneme '{Encoding.UTF8.GetString(token)}'";
            }

            pool.Add(Arpabet.Pack(symbol, stress));
        }
    }

    private static int Lookup(ReadOnlySpan<byte> letters)
    {
        if (letters.Length is < 1 or > 2) return -1;
        int first = letters[0] - 'A';
        int second = letters.Length == 2 ? letters[1] - 'A' : LettersInAlphabet;
        if ((uint)first >= LettersInAlphabet || (uint)second > LettersInAlphabet) return -1;
        return SymbolTable[first * (LettersInAlphabet + 1) + second];
    }

    private static sbyte[] BuildSymbolTable()
    {
        var table = new sbyte[LettersInAlphabet * (LettersInAlphabet + 1)];
        Array.Fill(table, (sbyte)-1);
        for (int i = 0; i < Arpabet.Symbols.Length; i++)
        {
            string s = Arpabet.Symbols[i];
            int second = s.Length == 2 ? s[1] - 'A' : LettersInAlphabet;
            table[(s[0] - 'A') * (LettersInAlphabet + 1) + second] = (sbyte)i;
        }

        return table;
    }

    private static PronunciationDictionaryFormatException Error(string source, int lineNumber, ReadOnlySpan<byte> line, string problem) =>
        new(source, lineNumber, Encoding.UTF8.GetString(line), problem);
}
