namespace YingHub.Moe.Rewards.Pronunciation;

/// <summary>
/// Resolves words to sounds: the lexicon first (as written, without a leading apostrophe, and <c>-'d</c> as
/// <c>-ed</c>: <c>lov'd</c> → <c>loved</c>), then <see cref="RuleBasedPronouncer"/>. Counts lookups and fallbacks
/// (thread-safe), and answers the rhyme and stress questions of the meter and rhyme components.
/// </summary>
internal sealed class Pronouncer
{
    private const int MaxStackChars = 64;
    private const int PrimaryStress = 1;

    private long _lookups;
    private long _fallbacks;

    public Pronouncer(PronunciationLexicon lexicon) => Lexicon = lexicon;

    public PronunciationLexicon Lexicon { get; }

    public PronunciationStatistics Statistics => new(Interlocked.Read(ref _lookups), Interlocked.Read(ref _fallbacks));

    public void ResetStatistics()
    {
        Interlocked.Exchange(ref _lookups, 0);
        Interlocked.Exchange(ref _fallbacks, 0);
    }

    /// <summary>The sounds of a normalised word (see <see cref="Text.WordNormalizer"/>); never fails.</summary>
    public WordSounds Resolve(ReadOnlySpan<char> word)
    {
        Interlocked.Increment(ref _lookups);
        int variant = LexiconVariant(word);
        if (variant >= 0) return new WordSounds(variant, 0, 0);

        Interlocked.Increment(ref _fallbacks);
        int syllables = RuleBasedPronouncer.CountSyllables(word);
        return new WordSounds(-1, syllables, RuleBasedPronouncer.PrimaryStress(word, syllables));
    }

    /// <summary>
    /// Writes the stress (0, 1, 2) of each syllable of one pronunciation into <paramref name="stresses"/> and returns
    /// the syllable count. <paramref name="variant"/> is a lexicon variant, or -1 for the fallback guess.
    /// </summary>
    public int Stresses(in WordSounds sounds, int variant, Span<byte> stresses)
    {
        if (sounds.IsFallback)
        {
            for (int i = 0; i < sounds.FallbackSyllables; i++) stresses[i] = i == sounds.FallbackStress ? (byte)PrimaryStress : (byte)0;
            return sounds.FallbackSyllables;
        }

        int n = 0;
        foreach (byte phoneme in Lexicon.Phonemes(variant))
        {
            if (Arpabet.IsVowel(phoneme)) stresses[n++] = (byte)Arpabet.Stress(phoneme);
        }

        return n;
    }

    /// <summary>The most syllables any pronunciation of the word has.</summary>
    public int MaxSyllables(in WordSounds sounds) => SyllableRange(sounds).Max;

    /// <summary>The fewest and most syllables of the word's pronunciations.</summary>
    public (int Min, int Max) SyllableRange(in WordSounds sounds)
    {
        if (sounds.IsFallback) return (sounds.FallbackSyllables, sounds.FallbackSyllables);
        int min = int.MaxValue, max = 0;
        for (int v = sounds.FirstVariant; v >= 0; v = Lexicon.NextVariant(v))
        {
            int n = 0;
            foreach (byte phoneme in Lexicon.Phonemes(v)) n += Arpabet.IsVowel(phoneme) ? 1 : 0;
            (min, max) = (Math.Min(min, n), Math.Max(max, n));
        }

        return (min, max);
    }

    /// <summary>
    /// Perfect rhyme: the phonemes from the last stressed vowel to the end are the same (vowel stress ignored) for
    /// some pair of pronunciations, and the words are neither the same word nor pronounced identically throughout.
    /// When either word is a fallback guess, their spellings from the last sounded vowel group are compared instead.
    /// </summary>
    public bool Rhymes(ReadOnlySpan<char> wordA, in WordSounds a, ReadOnlySpan<char> wordB, in WordSounds b)
    {
        if (StripLeadingApostrophe(wordA).SequenceEqual(StripLeadingApostrophe(wordB))) return false;
        if (a.IsFallback || b.IsFallback)
        {
            return RuleBasedPronouncer.SpellingRhyme(wordA) == RuleBasedPronouncer.SpellingRhyme(wordB);
        }

        for (int va = a.FirstVariant; va >= 0; va = Lexicon.NextVariant(va))
        {
            ReadOnlySpan<byte> pa = Lexicon.Phonemes(va);
            for (int vb = b.FirstVariant; vb >= 0; vb = Lexicon.NextVariant(vb))
            {
                ReadOnlySpan<byte> pb = Lexicon.Phonemes(vb);
                if (SameSounds(RhymePart(pa), RhymePart(pb)) && !SameSounds(pa, pb)) return true;
            }
        }

        return false;
    }

    /// <summary>The phonemes from the last stressed vowel (stress 1 or 2; else the last vowel) to the end.</summary>
    internal static ReadOnlySpan<byte> RhymePart(ReadOnlySpan<byte> phonemes)
    {
        int lastVowel = -1;
        for (int i = phonemes.Length - 1; i >= 0; i--)
        {
            if (!Arpabet.IsVowel(phonemes[i])) continue;
            if (lastVowel < 0) lastVowel = i;
            if (Arpabet.Stress(phonemes[i]) is 1 or 2) return phonemes[i..];
        }

        return lastVowel < 0 ? phonemes : phonemes[lastVowel..];
    }

    private static bool SameSounds(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b)
    {
        if (a.Length != b.Length) return false;
        for (int i = 0; i < a.Length; i++)
        {
            if (Arpabet.Symbol(a[i]) != Arpabet.Symbol(b[i])) return false;
        }

        return true;
    }

    private static ReadOnlySpan<char> StripLeadingApostrophe(ReadOnlySpan<char> word) =>
        word.Length > 1 && word[0] == '\'' ? word[1..] : word;

    private int LexiconVariant(ReadOnlySpan<char> word)
    {
        int variant = Lexicon.FirstVariant(word);
        if (variant >= 0) return variant;
        if (word.Length > 1 && word[0] == '\'')
        {
            variant = Lexicon.FirstVariant(word[1..]);
            if (variant >= 0) return variant;
        }

        if (word.Length > 2 && word.EndsWith("'d") && word.Length < MaxStackChars)
        {
            Span<char> expanded = stackalloc char[word.Length];
            word[..^2].CopyTo(expanded);
            "ed".CopyTo(expanded[(word.Length - 2)..]);
            variant = Lexicon.FirstVariant(expanded);
        }

        return variant;
    }
}
