namespace YingHub.Moe.Core.Tokenizers;

/// <summary>
/// A tokenizer with special tokens added after its base vocabulary, as Hugging Face's <c>add_special_tokens</c>
/// (<c>additional_special_tokens</c>): special token i has id <c>Base.VocabSize + i</c>. Encoding matches the special
/// strings first (longest first, left to right) and encodes the text between them with the base tokenizer; decoding
/// writes each special token as its string. UL2's sentinel and mode tokens are added this way
/// (<c>Training.Objectives</c>). Immutable and thread-safe.
/// </summary>
public sealed class SpecialTokensTokenizer : ITextTokenizer
{
    private readonly string[] _tokens;
    private readonly Dictionary<string, int> _ids;
    private readonly string[] _longestFirst;

    /// <summary><paramref name="baseTokenizer"/> with <paramref name="specialTokens"/> added after its vocabulary, in order.</summary>
    /// <exception cref="ArgumentException">No special tokens, an empty or repeated one, or a base that is itself a <see cref="SpecialTokensTokenizer"/> (add to its base instead).</exception>
    public SpecialTokensTokenizer(ITextTokenizer baseTokenizer, IEnumerable<string> specialTokens)
    {
        ArgumentNullException.ThrowIfNull(baseTokenizer);
        ArgumentNullException.ThrowIfNull(specialTokens);
        if (baseTokenizer is SpecialTokensTokenizer)
            throw new ArgumentException("The base already has special tokens: build one SpecialTokensTokenizer over its Base with all the tokens.", nameof(baseTokenizer));
        _tokens = specialTokens.ToArray();
        if (_tokens.Length == 0) throw new ArgumentException("No special tokens given.", nameof(specialTokens));
        _ids = new Dictionary<string, int>(_tokens.Length, StringComparer.Ordinal);
        for (int i = 0; i < _tokens.Length; i++)
        {
            if (string.IsNullOrEmpty(_tokens[i])) throw new ArgumentException($"Special token {i} is empty.", nameof(specialTokens));
            if (!_ids.TryAdd(_tokens[i], baseTokenizer.VocabSize + i))
                throw new ArgumentException($"Special token '{_tokens[i]}' is repeated (at {i}).", nameof(specialTokens));
        }

        _longestFirst = _tokens.OrderByDescending(t => t.Length).ThenBy(t => t, StringComparer.Ordinal).ToArray();
        Base = baseTokenizer;
    }

    /// <summary>The tokenizer of everything but the special tokens.</summary>
    public ITextTokenizer Base { get; }

    /// <summary>The special tokens, in id order (the first has id <c>Base.VocabSize</c>).</summary>
    public IReadOnlyList<string> SpecialTokens => _tokens;

    /// <inheritdoc />
    public string Name => Base.Name;

    /// <inheritdoc />
    public int VocabSize => Base.VocabSize + _tokens.Length;

    /// <summary>The id of special token <paramref name="token"/>.</summary>
    /// <exception cref="KeyNotFoundException">It is not one of <see cref="SpecialTokens"/>.</exception>
    public int IdOf(string token) =>
        _ids.TryGetValue(token, out int id) ? id : throw new KeyNotFoundException($"'{token}' is not a special token of this tokenizer ({string.Join(", ", _tokens.Take(8))}{(_tokens.Length > 8 ? ", ..." : "")}).");

    /// <inheritdoc />
    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length);
        int plainStart = 0;
        for (int i = 0; i < text.Length;)
        {
            string? match = null;
            foreach (string token in _longestFirst)
            {
                if (text.AsSpan(i).StartsWith(token, StringComparison.Ordinal))
                {
                    match = token;
                    break;
                }
            }

            if (match is null)
            {
                i++;
                continue;
            }

            if (i > plainStart) ids.AddRange(Base.Encode(text[plainStart..i]));
            ids.Add(_ids[match]);
            i += match.Length;
            plainStart = i;
        }

        if (plainStart < text.Length) ids.AddRange(Base.Encode(text[plainStart..]));
        return ids.ToArray();
    }

    /// <inheritdoc />
    public string Decode(ReadOnlySpan<int> ids)
    {
        var text = new System.Text.StringBuilder();
        int runStart = 0;
        for (int i = 0; i <= ids.Length; i++)
        {
            bool special = i < ids.Length && ids[i] >= Base.VocabSize;
            if (i < ids.Length && !special) continue;
            if (i > runStart) text.Append(Base.Decode(ids[runStart..i]));
            if (special)
            {
                int k = ids[i] - Base.VocabSize;
                if (k >= _tokens.Length)
                    throw new ArgumentException($"Token id {ids[i]} at position {i} is outside the vocabulary [0, {VocabSize}).", nameof(ids));
                text.Append(_tokens[k]);
            }

            runStart = i + 1;
        }

        return text.ToString();
    }
}
