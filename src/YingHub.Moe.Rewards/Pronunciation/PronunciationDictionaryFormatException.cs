namespace YingHub.Moe.Rewards.Pronunciation;

/// <summary>
/// A line of a pronunciation dictionary (CMU format) that cannot be parsed. The message is one line naming the file,
/// the line number, the problem and the line itself: <c>cmudict.dict: line 2: unknown phoneme 'QQ1' in "bad B QQ1 D".</c>
/// </summary>
public sealed class PronunciationDictionaryFormatException : FormatException
{
    /// <summary>The longest excerpt of the bad line the message quotes.</summary>
    public const int MaxQuotedChars = 120;

    /// <summary>Creates the exception for line <paramref name="lineNumber"/> of <paramref name="file"/>.</summary>
    /// <param name="file">The file path (or <c>stream</c>).</param>
    /// <param name="lineNumber">The 1-based line number.</param>
    /// <param name="line">The line's text, without its line break.</param>
    /// <param name="problem">What is wrong with it, e.g. <c>unknown phoneme 'QQ1'</c>.</param>
    public PronunciationDictionaryFormatException(string file, int lineNumber, string line, string problem)
        : base($"{file}: line {lineNumber}: {problem} in \"{Quote(line)}\".")
    {
        File = file;
        LineNumber = lineNumber;
        Line = line;
    }

    /// <summary>The file path, or <c>stream</c> for a lexicon loaded from a stream.</summary>
    public string File { get; }

    /// <summary>The 1-based number of the bad line.</summary>
    public int LineNumber { get; }

    /// <summary>The bad line, without its line break.</summary>
    public string Line { get; }

    /// <summary>The line with control characters shown as spaces, cut at <see cref="MaxQuotedChars"/>.</summary>
    private static string Quote(string line)
    {
        var chars = line.Select(c => char.IsControl(c) ? ' ' : c).ToArray();
        string text = new(chars);
        return text.Length <= MaxQuotedChars ? text : text[..MaxQuotedChars] + "…";
    }
}
