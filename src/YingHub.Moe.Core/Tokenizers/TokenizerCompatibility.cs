namespace YingHub.Moe.Core.Tokenizers;

/// <summary>
/// Whether two tokenizers give the same ids (same kind, same vocabulary) and whether a text is encodable by a
/// checkpoint's tokenizer: what resuming a run and fine-tuning from a checkpoint must check before training.
/// </summary>
public static class TokenizerCompatibility
{
    /// <summary>How many missing characters a message names before it says "and N more".</summary>
    public const int CharactersNamed = 10;

    /// <summary>A short description: kind and vocabulary size, e.g. <c>char (65 tokens)</c>.</summary>
    public static string Describe(ITextTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        return $"{tokenizer.Name} ({tokenizer.VocabSize:N0} tokens)";
    }

    /// <summary>
    /// Null when <paramref name="actual"/> gives the ids of <paramref name="expected"/> (same kind and size, and for
    /// char tokenizers the same characters in the same order, and the same special tokens in the same order); otherwise
    /// one sentence naming both.
    /// </summary>
    public static string? Difference(ITextTokenizer expected, ITextTokenizer actual)
    {
        ArgumentNullException.ThrowIfNull(expected);
        ArgumentNullException.ThrowIfNull(actual);
        if (expected.Name != actual.Name || expected.VocabSize != actual.VocabSize)
            return $"expected a {Describe(expected)} tokenizer, got {Describe(actual)}";
        var expectedSpecial = (expected as SpecialTokensTokenizer)?.SpecialTokens ?? [];
        var actualSpecial = (actual as SpecialTokensTokenizer)?.SpecialTokens ?? [];
        if (!expectedSpecial.SequenceEqual(actualSpecial))
            return $"both are {Describe(expected)} tokenizers but their special tokens differ ({expectedSpecial.Count} against {actualSpecial.Count}: {string.Join(", ", expectedSpecial.Take(3))} … against {string.Join(", ", actualSpecial.Take(3))} …)";
        if (expected is SpecialTokensTokenizer e && actual is SpecialTokensTokenizer f) return Difference(e.Base, f.Base);
        if (expected is CharTokenizer a && actual is CharTokenizer b && a.Vocabulary != b.Vocabulary)
            return $"both are {Describe(expected)} tokenizers but their characters differ (from position {FirstDifference(a.Vocabulary, b.Vocabulary)})";
        return null;
    }

    /// <summary>
    /// Null when a tokenizer of kind <paramref name="requestedKind"/> (e.g. <c>char</c>, <c>gpt2</c>) is the kind of
    /// <paramref name="saved"/>, or when no kind is requested; otherwise one sentence naming both kinds.
    /// </summary>
    public static string? KindDifference(ITextTokenizer saved, string? requestedKind)
    {
        ArgumentNullException.ThrowIfNull(saved);
        return requestedKind is null || string.Equals(requestedKind, saved.Name, StringComparison.OrdinalIgnoreCase)
            ? null
            : $"a {requestedKind} tokenizer was requested but the checkpoint's tokenizer is {Describe(saved)}";
    }

    /// <summary>The distinct characters of <paramref name="text"/> outside the vocabulary of <paramref name="tokenizer"/>, in order of first appearance.</summary>
    /// <returns>The characters and how many times they occur in all.</returns>
    public static (IReadOnlyList<char> Characters, long Occurrences) MissingCharacters(CharTokenizer tokenizer, string text)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(text);
        var known = new HashSet<char>(tokenizer.Vocabulary);
        var seen = new HashSet<char>();
        var missing = new List<char>();
        long occurrences = 0;
        foreach (char c in text)
        {
            if (known.Contains(c)) continue;
            occurrences++;
            if (seen.Add(c)) missing.Add(c);
        }

        return (missing, occurrences);
    }

    /// <summary>
    /// Throws unless <paramref name="tokenizer"/> can encode <paramref name="text"/>. Byte-level tokenizers encode
    /// any text; a char tokenizer encodes only its own characters, and the message names the first
    /// <see cref="CharactersNamed"/> missing ones and how many there are.
    /// </summary>
    /// <param name="tokenizer">The tokenizer, typically a checkpoint's.</param>
    /// <param name="text">The corpus.</param>
    /// <param name="source">The corpus' name in the message, e.g. its path.</param>
    /// <exception cref="ArgumentException">The text holds characters outside the vocabulary.</exception>
    public static void EnsureEncodable(ITextTokenizer tokenizer, string text, string source)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(text);
        if (tokenizer is not CharTokenizer chars) return;
        var (missing, occurrences) = MissingCharacters(chars, text);
        if (missing.Count == 0) return;
        string named = string.Join(", ", missing.Take(CharactersNamed).Select(DescribeChar));
        string more = missing.Count > CharactersNamed ? $" and {missing.Count - CharactersNamed} more" : "";
        throw new ArgumentException(
            $"{source} has {missing.Count} distinct character(s) ({occurrences:N0} occurrences) outside the tokenizer's {chars.VocabSize}-character vocabulary: {named}{more}.");
    }

    private static int FirstDifference(string a, string b)
    {
        int i = 0;
        while (i < a.Length && i < b.Length && a[i] == b[i]) i++;
        return i;
    }

    private static string DescribeChar(char c) =>
        char.IsControl(c) || char.IsWhiteSpace(c) || char.IsSurrogate(c) ? $"U+{(int)c:X4}" : $"'{c}' (U+{(int)c:X4})";
}
