namespace YingHub.Moe.Core.Tokenizers;

/// <summary>Checks on token ids shared by the tokenizers.</summary>
internal static class TokenIds
{
    /// <summary>Throws when an id of <paramref name="ids"/> is outside [0, <paramref name="vocabSize"/>), naming it and its position.</summary>
    /// <exception cref="ArgumentException">An id outside the vocabulary.</exception>
    public static void ThrowIfOutside(ReadOnlySpan<int> ids, int vocabSize)
    {
        for (int i = 0; i < ids.Length; i++)
        {
            if ((uint)ids[i] >= (uint)vocabSize)
                throw new ArgumentException($"Token id {ids[i]} at position {i} is outside the vocabulary [0, {vocabSize}).", nameof(ids));
        }
    }
}
