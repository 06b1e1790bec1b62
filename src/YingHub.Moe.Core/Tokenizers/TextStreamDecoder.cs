namespace YingHub.Moe.Core.Tokenizers;

/// <summary>
/// Turns a stream of token ids into text as it is generated, holding back the bytes of a character that a byte-level
/// BPE token split (an emoji or CJK character often spans tokens): each <see cref="Push"/> returns only text that can
/// no longer change, and <see cref="Flush"/> the rest. Concatenated, the pieces equal
/// <see cref="ITextTokenizer.Decode"/> of all ids.
/// </summary>
public sealed class TextStreamDecoder
{
    private const char Replacement = '\uFFFD';
    private readonly ITextTokenizer _tokenizer;
    private readonly List<int> _ids = [];
    private int _emitted; // characters of the decoded text already returned

    /// <summary>A decoder over <paramref name="tokenizer"/>.</summary>
    public TextStreamDecoder(ITextTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        _tokenizer = tokenizer;
    }

    /// <summary>Adds a token; returns the text that became final (possibly empty).</summary>
    public string Push(int id)
    {
        _ids.Add(id);
        string text = _tokenizer.Decode(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_ids));
        int end = text.Length;
        while (end > _emitted && text[end - 1] == Replacement) end--; // an incomplete character decodes as U+FFFD for now
        if (end <= _emitted) return "";
        string piece = text[_emitted..end];
        _emitted = end;
        if (end == text.Length)
        {
            // nothing held back: later tokens decode on their own, so the history can go
            _ids.Clear();
            _emitted = 0;
        }

        return piece;
    }

    /// <summary>Returns whatever is left (an incomplete character stays U+FFFD) and starts over.</summary>
    public string Flush()
    {
        string text = _tokenizer.Decode(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_ids));
        string rest = text[Math.Min(_emitted, text.Length)..];
        _ids.Clear();
        _emitted = 0;
        return rest;
    }
}
