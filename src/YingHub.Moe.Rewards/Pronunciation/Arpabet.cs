namespace YingHub.Moe.Rewards.Pronunciation;

/// <summary>
/// The 39 ARPABET phonemes of the CMU Pronouncing Dictionary, packed into one byte each:
/// <c>(symbol index &lt;&lt; 2) | stress</c>, where stress is 0, 1 or 2 for vowels and <see cref="NoStress"/> for
/// consonants. Vowels come first, so a symbol index below <see cref="VowelCount"/> is a vowel.
/// </summary>
internal static class Arpabet
{
    /// <summary>The stress slot of a consonant.</summary>
    public const int NoStress = 3;

    /// <summary>How many of <see cref="Symbols"/> (the first ones) are vowels.</summary>
    public const int VowelCount = 15;

    private const int StressBits = 2;
    private const int StressMask = (1 << StressBits) - 1;

    /// <summary>The symbols, vowels first.</summary>
    public static readonly string[] Symbols =
    [
        "AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW",
        "B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG", "P", "R", "S", "SH", "T", "TH",
        "V", "W", "Y", "Z", "ZH",
    ];

    /// <summary>Packs a symbol index and a stress slot.</summary>
    public static byte Pack(int symbol, int stress) => (byte)((symbol << StressBits) | stress);

    /// <summary>The symbol index of a packed phoneme.</summary>
    public static int Symbol(byte phoneme) => phoneme >> StressBits;

    /// <summary>The stress of a packed phoneme: 0, 1, 2, or <see cref="NoStress"/> for a consonant.</summary>
    public static int Stress(byte phoneme) => phoneme & StressMask;

    /// <summary>Whether a packed phoneme is a vowel (a syllable nucleus).</summary>
    public static bool IsVowel(byte phoneme) => Symbol(phoneme) < VowelCount;

    /// <summary>Formats a packed phoneme as in the dictionary: <c>EY1</c>, <c>D</c>.</summary>
    public static string Format(byte phoneme)
    {
        string symbol = Symbols[Symbol(phoneme)];
        int stress = Stress(phoneme);
        return stress == NoStress ? symbol : symbol + (char)('0' + stress);
    }
}
