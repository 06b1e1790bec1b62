using System.Text.Json.Serialization;

namespace YingHub.Moe.Core.Tokenizers;

/// <summary>
/// One token per UTF-16 character, the vocabulary being the sorted distinct characters of a corpus (Tiny Shakespeare
/// gives the 65 of char-rnn, nanoGPT and makeMoE). Save <see cref="Vocabulary"/> with the model to rebuild it.
/// </summary>
public sealed class CharTokenizer : ITextTokenizer
{
    private readonly char[] _chars;
    private readonly Dictionary<char, int> _ids;

    /// <summary>A tokenizer over exactly <paramref name="vocabulary"/> (distinct characters; id = position).</summary>
    /// <exception cref="ArgumentException">The vocabulary is empty or repeats a character.</exception>
    [JsonConstructor]
    public CharTokenizer(string vocabulary)
    {
        ArgumentNullException.ThrowIfNull(vocabulary);
        if (vocabulary.Length == 0) throw new ArgumentException("The vocabulary is empty.", nameof(vocabulary));
        _chars = vocabulary.ToCharArray();
        _ids = new Dictionary<char, int>(_chars.Length);
        for (int i = 0; i < _chars.Length; i++)
        {
            if (!_ids.TryAdd(_chars[i], i))
                throw new ArgumentException($"The vocabulary repeats the character {Describe(_chars[i])} at position {i}.", nameof(vocabulary));
        }
    }

    /// <summary>The sorted distinct characters of <paramref name="corpus"/>.</summary>
    public static CharTokenizer FromCorpus(string corpus)
    {
        ArgumentNullException.ThrowIfNull(corpus);
        if (corpus.Length == 0) throw new ArgumentException("The corpus is empty.", nameof(corpus));
        var distinct = new SortedSet<char>(corpus);
        return new CharTokenizer(new string(distinct.ToArray()));
    }

    /// <summary>The characters, id = position.</summary>
    public string Vocabulary => new(_chars);

    /// <inheritdoc />
    [JsonIgnore] public string Name => "char";

    /// <inheritdoc />
    [JsonIgnore] public int VocabSize => _chars.Length;

    /// <inheritdoc />
    /// <exception cref="ArgumentException">A character is not in the vocabulary; the message names it and its position.</exception>
    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new int[text.Length];
        for (int i = 0; i < text.Length; i++)
        {
            if (!_ids.TryGetValue(text[i], out ids[i]))
                throw new ArgumentException($"The character {Describe(text[i])} at position {i} is not in the {VocabSize}-character vocabulary.", nameof(text));
        }

        return ids;
    }

    /// <inheritdoc />
    public string Decode(ReadOnlySpan<int> ids)
    {
        var chars = new char[ids.Length];
        for (int i = 0; i < ids.Length; i++)
        {
            int id = ids[i];
            if ((uint)id >= (uint)_chars.Length)
                throw new ArgumentException($"Token id {id} at position {i} is outside the vocabulary [0, {VocabSize}).", nameof(ids));
            chars[i] = _chars[id];
        }

        return new string(chars);
    }

    private static string Describe(char c) =>
        char.IsControl(c) || char.IsWhiteSpace(c) || char.IsSurrogate(c) ? $"U+{(int)c:X4}" : $"'{c}' (U+{(int)c:X4})";
}
