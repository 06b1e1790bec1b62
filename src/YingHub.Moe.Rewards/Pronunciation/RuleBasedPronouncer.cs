namespace YingHub.Moe.Rewards.Pronunciation;

/// <summary>
/// Spelling rules for words missing from the lexicon, so that scoring never fails on an unknown word.
/// Syllables are vowel groups (<c>y</c> counts as a vowel unless a vowel follows it) with the usual English
/// corrections: silent final <c>e</c> (but <c>-le</c> after a consonant is a syllable), silent <c>-ed</c> and
/// <c>-es</c> (except after t/d and sibilants), silent <c>e</c> before <c>-ly/-ful/-less/-ment/-ness</c>, vowel hiatus
/// (<c>lion</c>, <c>piano</c>, <c>idea</c>) and <c>-sm</c>. Early Modern forms come out right: <c>-est</c> and
/// <c>-eth</c> are syllables, <c>lov'd</c> is one syllable (the apostrophe elides the vowel), an accented
/// <c>belovèd</c> keeps its <c>-èd</c>. Primary stress: the stem before <c>-est/-eth</c>; the second syllable after a
/// common unstressed prefix; the penultimate before <c>-tion/-ic/-ial</c>, the antepenultimate before
/// <c>-ity/-ical/-ogy</c>; otherwise the first syllable, or the antepenultimate from four syllables on.
/// </summary>
internal static class RuleBasedPronouncer
{
    private const int MaxStackLetters = 64;
    private const int AntepenultimateFrom = 4;

    private static readonly string[] SilentEBeforeSuffix = ["ly", "ful", "less", "ment", "ness"];
    private static readonly string[] HiatusWordEnd = ["ea", "ier", "iest"];
    private static readonly string[] UnstressedPrefixes = ["be", "de", "re", "un", "con", "com", "dis", "ex", "mis", "pre", "per", "sub", "en", "em", "ob", "ad", "in", "im", "for", "with"];
    private static readonly string[] PenultimateSuffixes = ["tion", "sion", "cian", "ic", "ial", "ious", "ian"];
    private static readonly string[] AntepenultimateSuffixes = ["ity", "ify", "ical", "ogy", "ety", "graphy"];
    private static readonly string[] FinalStressSuffixes = ["ee", "eer", "ese", "ique", "oon"];
    private static readonly string[] EarlyModernEndings = ["est", "eth", "edst"];

    /// <summary>Syllables of a normalised word (at least one).</summary>
    public static int CountSyllables(ReadOnlySpan<char> word)
    {
        Span<char> buffer = word.Length <= MaxStackLetters ? stackalloc char[word.Length] : new char[word.Length];
        Span<char> w = Letters(word, buffer, out bool accentedE);
        if (w.IsEmpty) return 1;

        int groups = 0;
        for (int i = 0; i < w.Length; i++)
        {
            if (IsVowel(w, i) && (i == 0 || !IsVowel(w, i - 1))) groups++;
        }

        int count = groups + InnerHiatus(w);
        if (groups > 1) count += HiatusAtEnd(w) - SilentEndings(w, accentedE) - SilentMedialE(w);
        if (w.EndsWith("sm") && w.Length > 2) count++;
        if (w.StartsWith("mc")) count++;
        if (SibilantPossessive(word)) count++;
        return Math.Max(1, count);
    }

    /// <summary>The 0-based syllable that carries primary stress, given the word's syllable count.</summary>
    public static int PrimaryStress(ReadOnlySpan<char> word, int syllables)
    {
        if (syllables <= 1) return 0;
        Span<char> buffer = word.Length <= MaxStackLetters ? stackalloc char[word.Length] : new char[word.Length];
        Span<char> w = Letters(word, buffer, out _);
        foreach (string ending in EarlyModernEndings)
        {
            if (w.EndsWith(ending) && w.Length > ending.Length + 1) return PrimaryStress(w[..^ending.Length], syllables - 1);
        }

        foreach (string suffix in FinalStressSuffixes)
        {
            if (w.EndsWith(suffix) && w.Length > suffix.Length + 1) return syllables - 1;
        }

        foreach (string suffix in PenultimateSuffixes)
        {
            if (w.EndsWith(suffix)) return Math.Max(0, syllables - 2);
        }

        foreach (string suffix in AntepenultimateSuffixes)
        {
            if (w.EndsWith(suffix)) return Math.Max(0, syllables - 3);
        }

        foreach (string prefix in UnstressedPrefixes)
        {
            if (w.StartsWith(prefix) && w.Length > prefix.Length + 2) return 1;
        }

        return syllables < AntepenultimateFrom ? 0 : syllables - 3;
    }

    /// <summary>
    /// The spelling from the start of the last sounded vowel group to the end, apostrophes dropped: the rhyme of an
    /// unknown word (<c>dimm'd</c> and <c>untrimm'd</c> share <c>immd</c>; <c>shine</c> gives <c>ine</c>).
    /// </summary>
    public static string SpellingRhyme(ReadOnlySpan<char> word)
    {
        Span<char> buffer = word.Length <= MaxStackLetters ? stackalloc char[word.Length] : new char[word.Length];
        Span<char> w = Letters(word, buffer, out _);
        int end = w.Length;
        if (end > 2 && w[end - 1] == 'e' && !IsVowel(w, end - 2)) end--;     // silent final e: shine -> shin|e
        int i = end - 1;
        while (i >= 0 && !IsVowel(w, i)) i--;
        while (i > 0 && IsVowel(w, i - 1)) i--;
        return i < 0 ? new string(w) : new string(w[i..]);
    }

    /// <summary>Lower-case letters only; è/é become a sounded <c>e</c> (reported by <paramref name="accentedE"/>).</summary>
    private static Span<char> Letters(ReadOnlySpan<char> word, Span<char> buffer, out bool accentedE)
    {
        int n = 0;
        accentedE = false;
        foreach (char c in word)
        {
            char lower = char.ToLowerInvariant(c);
            if (lower is 'è' or 'é')
            {
                accentedE = true;
                buffer[n++] = 'e';
            }
            else if (lower is >= 'a' and <= 'z')
            {
                buffer[n++] = lower;
            }
        }

        return buffer[..n];
    }

    private static bool IsVowel(ReadOnlySpan<char> w, int i) => w[i] switch
    {
        'a' or 'e' or 'i' or 'o' or 'u' => true,
        'y' => i + 1 >= w.Length || w[i + 1] is not ('a' or 'e' or 'i' or 'o' or 'u'),
        _ => false,
    };

    private static bool IsConsonant(ReadOnlySpan<char> w, int i) => i >= 0 && i < w.Length && !IsVowel(w, i);

    /// <summary>Final <c>-e</c>, <c>-es</c>, <c>-ed</c> that do not make a syllable.</summary>
    private static int SilentEndings(ReadOnlySpan<char> w, bool accentedE)
    {
        int n = w.Length;
        if (w[n - 1] == 'e' && IsConsonant(w, n - 2))
        {
            bool syllabicLe = w[n - 2] == 'l' && IsConsonant(w, n - 3) && w[n - 3] != 'l';
            return syllabicLe ? 0 : 1;
        }

        if (n >= 3 && w[n - 2] == 'e' && w[n - 1] is 's' or 'd' && IsConsonant(w, n - 3))
        {
            if (accentedE && w[n - 1] == 'd') return 0;
            char before = w[n - 3];
            bool syllabicLe = before == 'l' && IsConsonant(w, n - 4) && w[n - 4] != 'l';
            if (syllabicLe) return 0;
            if (w[n - 1] == 'd') return before is 't' or 'd' ? 0 : 1;
            bool sibilant = before is 's' or 'z' or 'x' or 'c' or 'g' || (before == 'h' && n >= 4 && w[n - 4] is 'c' or 's');
            return sibilant ? 0 : 1;
        }

        return 0;
    }

    /// <summary>Silent <c>e</c> of a stem before a consonant suffix (<c>lovely</c>, <c>movement</c>).</summary>
    private static int SilentMedialE(ReadOnlySpan<char> w)
    {
        foreach (string suffix in SilentEBeforeSuffix)
        {
            int e = w.Length - suffix.Length - 1;
            if (e >= 3 && w.EndsWith(suffix) && w[e] == 'e' && IsConsonant(w, e - 1) && !IsConsonant(w, e - 2)) return 1;
        }

        return 0;
    }

    /// <summary>Adjacent vowels that are two syllables: <c>lion</c>, <c>piano</c>, <c>video</c>, <c>duo</c>.</summary>
    private static int InnerHiatus(ReadOnlySpan<char> w)
    {
        int extra = 0;
        for (int i = 1; i < w.Length; i++)
        {
            char a = w[i - 1], b = w[i];
            char before = i >= 2 ? w[i - 2] : ' ';
            bool softened = before is 'c' or 't' or 's' or 'g' or 'x';
            bool qu = before is 'q' or 'g';
            if ((a == 'i' && b is 'a' or 'o' or 'u' && !softened)
                || (a == 'e' && b == 'o' && before != 'g')
                || (a == 'u' && b is 'a' or 'o' && !qu)
                || (a == 'i' && b == 'i'))
            {
                extra++;
            }
        }

        return extra;
    }

    /// <summary>Word endings that split a vowel group: <c>idea</c>, <c>happier</c>, <c>happiest</c>.</summary>
    private static int HiatusAtEnd(ReadOnlySpan<char> w)
    {
        foreach (string end in HiatusWordEnd)
        {
            if (w.EndsWith(end) && w.Length > end.Length && IsConsonant(w, w.Length - end.Length - 1)) return 1;
        }

        return 0;
    }

    /// <summary>A possessive <c>'s</c> after a sibilant is a syllable: <c>gross's</c>, <c>church's</c>.</summary>
    private static bool SibilantPossessive(ReadOnlySpan<char> word)
    {
        if (word.Length < 4 || !word.EndsWith("'s")) return false;
        char before = char.ToLowerInvariant(word[^3]);
        return before is 's' or 'z' or 'x' || (before == 'h' && char.ToLowerInvariant(word[^4]) is 'c' or 's');
    }
}
