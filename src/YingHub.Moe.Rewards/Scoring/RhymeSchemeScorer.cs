using System.Text;
using YingHub.Moe.Rewards.Pronunciation;
using YingHub.Moe.Rewards.Text;

namespace YingHub.Moe.Rewards.Scoring;

/// <summary>The rhyme component of a text and the scheme found.</summary>
/// <param name="Score">0..1: mean group score over groups of two or more lines; 0 without such a group.</param>
/// <param name="Scheme">Letters per line, groups separated by spaces (<c>ABAB CDCD EFEF GG</c>), or null when not asked for.</param>
/// <param name="Labels">The letter of each verse line, or null when not asked for.</param>
internal readonly record struct RhymeSchemeResult(double Score, string? Scheme, char[]? Labels);

/// <summary>
/// Rhyme scheme over consecutive groups of four lines within each stanza (blank lines separate stanzas); a stanza's
/// last 1–3 lines form a shorter group. A quatrain scores the better of ABAB (lines 1–3 and 2–4 rhyme) and AABB
/// (1–2 and 3–4), each pair worth half; a two-line group scores 1 when it is a rhyming couplet; a three-line group
/// scores 1 when any two of its lines rhyme; a single line is not scored. End words rhyme as
/// <see cref="Pronouncer.Rhymes"/> says (perfect rhyme). Letters are assigned per group, continuing across groups,
/// A–Z then a–z, then again from A.
/// </summary>
internal static class RhymeSchemeScorer
{
    /// <summary>Lines per group (a quatrain).</summary>
    public const int GroupSize = 4;

    private const string Letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    private const double PairWeight = 0.5;

    /// <summary>Scores the end words of the lines of <paramref name="text"/>; <paramref name="sounds"/> holds every word's sounds.</summary>
    public static RhymeSchemeResult Score(ParsedText text, ReadOnlySpan<WordSounds> sounds, Pronouncer pronouncer, bool withScheme)
    {
        IReadOnlyList<VerseLine> lines = text.Lines;
        Span<bool> rhymes = stackalloc bool[GroupSize * GroupSize];
        char[]? labels = withScheme ? new char[lines.Count] : null;
        StringBuilder? scheme = withScheme ? new StringBuilder(lines.Count + lines.Count / GroupSize) : null;
        double total = 0;
        int scored = 0, letter = 0;

        int start = 0;
        while (start < lines.Count)
        {
            int size = 1;
            while (size < GroupSize && start + size < lines.Count && lines[start + size].Stanza == lines[start].Stanza) size++;

            for (int i = 0; i < size; i++)
            {
                for (int j = i + 1; j < size; j++)
                {
                    bool r = Rhyme(text, sounds, pronouncer, lines[start + i], lines[start + j]);
                    rhymes[i * GroupSize + j] = r;
                    rhymes[j * GroupSize + i] = r;
                }
            }

            if (size >= 2)
            {
                total += GroupScore(rhymes, size);
                scored++;
            }

            if (labels is not null && scheme is not null)
            {
                if (scheme.Length > 0) scheme.Append(' ');
                for (int i = 0; i < size; i++)
                {
                    int match = -1;
                    for (int j = 0; j < i && match < 0; j++) match = rhymes[j * GroupSize + i] ? j : -1;
                    labels[start + i] = match >= 0 ? labels[start + match] : Letters[letter++ % Letters.Length];
                    scheme.Append(labels[start + i]);
                }
            }

            start += size;
        }

        return new RhymeSchemeResult(scored == 0 ? 0 : total / scored, scheme?.ToString(), labels);
    }

    private static double GroupScore(ReadOnlySpan<bool> r, int size)
    {
        return size switch
        {
            2 => R(r, 0, 1),
            3 => Math.Max(R(r, 0, 1), Math.Max(R(r, 1, 2), R(r, 0, 2))),
            _ => Math.Max(PairWeight * (R(r, 0, 2) + R(r, 1, 3)), PairWeight * (R(r, 0, 1) + R(r, 2, 3))),
        };
    }

    private static double R(ReadOnlySpan<bool> rhymes, int i, int j) => rhymes[i * GroupSize + j] ? 1 : 0;

    private static bool Rhyme(ParsedText text, ReadOnlySpan<WordSounds> sounds, Pronouncer pronouncer, VerseLine a, VerseLine b)
    {
        int lastA = a.FirstToken + a.TokenCount - 1;
        int lastB = b.FirstToken + b.TokenCount - 1;
        return pronouncer.Rhymes(text.Word(lastA), sounds[lastA], text.Word(lastB), sounds[lastB]);
    }
}
