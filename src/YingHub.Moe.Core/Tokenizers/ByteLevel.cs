namespace YingHub.Moe.Core.Tokenizers;

/// <summary>
/// GPT-2's byte-to-unicode table (<c>bytes_to_unicode</c> in OpenAI's <c>encoder.py</c>): printable Latin-1 bytes map
/// to themselves, the other 68 bytes to U+0100 onwards, so every byte sequence is a printable string in vocab.json.
/// </summary>
internal static class ByteLevel
{
    /// <summary>Character → byte, the inverse of the table.</summary>
    public static IReadOnlyDictionary<char, byte> UnicodeToByte { get; } = Build();

    private static Dictionary<char, byte> Build()
    {
        var map = new Dictionary<char, byte>(256);
        int next = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            map[printable ? (char)b : (char)(256 + next++)] = (byte)b;
        }

        return map;
    }
}
