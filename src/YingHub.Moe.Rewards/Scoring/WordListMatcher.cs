using YingHub.Moe.Rewards.Text;

namespace YingHub.Moe.Rewards.Scoring;

/// <summary>
/// Counts occurrences of listed words and phrases on word boundaries: an entry matches whole words only
/// (<c>phone</c> does not match <c>telephone</c> or <c>phones</c>), case-insensitively; a multi-word entry matches
/// consecutive words of one line. A word written with a leading apostrophe as a quotation mark (<c>'thou</c>) also
/// matches its bare form. At most one match is counted per word position.
/// </summary>
internal sealed class WordListMatcher
{
    private readonly Dictionary<string, string[][]> _byFirstWord;
    private readonly Dictionary<string, string[][]>.AlternateLookup<ReadOnlySpan<char>> _lookup;

    public WordListMatcher(IEnumerable<string> entries)
    {
        _byFirstWord = entries
            .Select(WordTokenizer.Words)
            .Where(words => words.Length > 0)
            .GroupBy(words => words[0], StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.Select(words => words[1..]).ToArray(), StringComparer.Ordinal);
        _lookup = _byFirstWord.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>Matches starting in <paramref name="line"/>.</summary>
    public int Count(ParsedText text, VerseLine line)
    {
        int count = 0;
        int end = line.FirstToken + line.TokenCount;
        for (int t = line.FirstToken; t < end; t++)
        {
            ReadOnlySpan<char> word = text.Word(t);
            if (!_lookup.TryGetValue(word, out string[][]? rests)
                && !(word.Length > 1 && word[0] == '\'' && _lookup.TryGetValue(word[1..], out rests)))
            {
                continue;
            }

            foreach (string[] rest in rests)
            {
                if (Follows(text, t + 1, end, rest))
                {
                    count++;
                    break;
                }
            }
        }

        return count;
    }

    private static bool Follows(ParsedText text, int next, int end, string[] rest)
    {
        if (next + rest.Length > end) return false;
        for (int k = 0; k < rest.Length; k++)
        {
            if (!text.Word(next + k).SequenceEqual(rest[k])) return false;
        }

        return true;
    }
}
