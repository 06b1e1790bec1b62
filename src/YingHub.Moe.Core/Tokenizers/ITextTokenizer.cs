namespace YingHub.Moe.Core.Tokenizers;

/// <summary>Turns text into token ids and back. Implementations are immutable and thread-safe.</summary>
public interface ITextTokenizer
{
    /// <summary>A short name of the kind, e.g. <c>char</c> or <c>gpt2</c>.</summary>
    string Name { get; }

    /// <summary>Number of token ids; every id is in [0, VocabSize).</summary>
    int VocabSize { get; }

    /// <summary>The ids of <paramref name="text"/>.</summary>
    /// <exception cref="ArgumentException">The text holds something the vocabulary cannot express.</exception>
    int[] Encode(string text);

    /// <summary>The text of <paramref name="ids"/>.</summary>
    /// <exception cref="ArgumentException">An id is outside [0, VocabSize).</exception>
    string Decode(ReadOnlySpan<int> ids);
}
