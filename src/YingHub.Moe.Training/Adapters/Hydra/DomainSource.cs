using System.Text.RegularExpressions;

namespace YingHub.Moe.Training.Adapters.Hydra;

/// <summary>How a <see cref="DomainSource"/> cuts a file's text into documents.</summary>
public enum DocumentSplit
{
    /// <summary>The whole file is one document.</summary>
    WholeFile,

    /// <summary>Consecutive chunks of <see cref="DomainSource.ChunkCharacters"/> characters (the last may be shorter).</summary>
    FixedCharacters,

    /// <summary>Paragraphs separated by blank lines, packed greedily into documents of up to <see cref="DomainSource.ChunkCharacters"/> characters.</summary>
    BlankLines,
}

/// <summary>
/// A named source of documents of one domain: a file, or the files of a directory matching a glob, cut into documents
/// as <see cref="Split"/> says. Blank documents (only white space) are dropped. Files are read in ordinal path order,
/// so the document order does not depend on the file system.
/// </summary>
/// <param name="Domain">The domain label of every document of this source, e.g. <c>shakespeare</c>.</param>
/// <param name="Path">A file, or a directory (then <paramref name="Glob"/> selects its files).</param>
/// <param name="Glob">For a directory: a file-name pattern (<c>*</c> and <c>?</c>), e.g. <c>*.cs</c>; <c>*</c> takes every file.</param>
/// <param name="Recursive">For a directory: include its subdirectories.</param>
/// <param name="Split">How each file is cut into documents.</param>
/// <param name="ChunkCharacters">The document size for <see cref="DocumentSplit.FixedCharacters"/> and <see cref="DocumentSplit.BlankLines"/>; at least 1.</param>
/// <param name="MaxDocuments">Keep at most this many documents, a seeded sample (see <see cref="DomainCorpus.Build"/>); null keeps all.</param>
public sealed record DomainSource(
    string Domain, string Path, string Glob = "*", bool Recursive = false, DocumentSplit Split = DocumentSplit.FixedCharacters,
    int ChunkCharacters = 2000, int? MaxDocuments = null)
{
    /// <summary>A file cut into documents of <paramref name="chunkCharacters"/> characters.</summary>
    public static DomainSource FromFile(string domain, string path, int chunkCharacters = 2000, int? maxDocuments = null) =>
        new(domain, path, ChunkCharacters: chunkCharacters, MaxDocuments: maxDocuments);

    /// <summary>The files of <paramref name="directory"/> matching <paramref name="glob"/>, each cut into chunks of <paramref name="chunkCharacters"/>.</summary>
    public static DomainSource FromDirectory(string domain, string directory, string glob, bool recursive = false, int chunkCharacters = 2000, int? maxDocuments = null) =>
        new(domain, directory, glob, recursive, DocumentSplit.FixedCharacters, chunkCharacters, maxDocuments);

    /// <summary>The documents of this source, in file order then position order.</summary>
    /// <exception cref="ArgumentException">A field is out of range (named in the message).</exception>
    /// <exception cref="FileNotFoundException">Neither a file nor a directory exists at <see cref="Path"/>, or the glob matches no file.</exception>
    public IReadOnlyList<DomainDocument> Read()
    {
        if (string.IsNullOrWhiteSpace(Domain)) throw new ArgumentException($"Domain = '{Domain}' must not be blank.", nameof(Domain));
        if (ChunkCharacters < 1) throw new ArgumentException($"ChunkCharacters = {ChunkCharacters} must be at least 1 (source '{Domain}').", nameof(ChunkCharacters));
        if (MaxDocuments is < 1) throw new ArgumentException($"MaxDocuments = {MaxDocuments} must be at least 1 or null (source '{Domain}').", nameof(MaxDocuments));
        string[] files = Files();
        var documents = new List<DomainDocument>();
        foreach (string file in files)
        {
            string text = File.ReadAllText(file);
            foreach (string chunk in Cut(text))
            {
                if (!string.IsNullOrWhiteSpace(chunk)) documents.Add(new DomainDocument(chunk, Domain, file));
            }
        }

        return documents;
    }

    private string[] Files()
    {
        if (File.Exists(Path)) return [System.IO.Path.GetFullPath(Path)];
        if (!Directory.Exists(Path)) throw new FileNotFoundException($"Source '{Domain}': no file or directory at '{Path}'.", Path);
        var pattern = new Regex("^" + Regex.Escape(Glob).Replace(@"\*", ".*", StringComparison.Ordinal).Replace(@"\?", ".", StringComparison.Ordinal) + "$");
        string[] files = Directory.EnumerateFiles(Path, "*", Recursive ? SearchOption.AllDirectories : SearchOption.TopDirectoryOnly)
            .Where(f => pattern.IsMatch(System.IO.Path.GetFileName(f)))
            .Select(System.IO.Path.GetFullPath)
            .Order(StringComparer.Ordinal)
            .ToArray();
        if (files.Length == 0) throw new FileNotFoundException($"Source '{Domain}': no file in '{Path}' matches '{Glob}'{(Recursive ? " (recursive)" : "")}.", Path);
        return files;
    }

    private IEnumerable<string> Cut(string text)
    {
        switch (Split)
        {
            case DocumentSplit.WholeFile:
                yield return text;
                break;
            case DocumentSplit.FixedCharacters:
                for (int start = 0; start < text.Length; start += ChunkCharacters)
                    yield return text.Substring(start, Math.Min(ChunkCharacters, text.Length - start));
                break;
            case DocumentSplit.BlankLines:
                var current = new System.Text.StringBuilder();
                foreach (string paragraph in Regex.Split(text.ReplaceLineEndings("\n"), @"\n[ \t]*\n"))
                {
                    if (string.IsNullOrWhiteSpace(paragraph)) continue;
                    if (current.Length > 0 && current.Length + 2 + paragraph.Length > ChunkCharacters)
                    {
                        yield return current.ToString();
                        current.Clear();
                    }

                    if (current.Length > 0) current.Append("\n\n");
                    current.Append(paragraph);
                }

                if (current.Length > 0) yield return current.ToString();
                break;
            default:
                throw new ArgumentException($"Split = {Split} is not a DocumentSplit value.", nameof(Split));
        }
    }
}

/// <summary>One document of a <see cref="DomainCorpus"/>.</summary>
/// <param name="Text">The document's text.</param>
/// <param name="Domain">Its known domain label, or null when unknown (then it counts for clustering but not for accuracy).</param>
/// <param name="Source">Where it came from (a file path), for reports.</param>
public sealed record DomainDocument(string Text, string? Domain, string? Source = null);
