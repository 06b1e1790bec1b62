using System.Text.Json;
using YingHub.Moe.Core.Checkpoints;
using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Training.Adapters.Hydra;

/// <summary>
/// Documents of several domains split into a training part (for clustering, routers and adapters) and a held-out part
/// (for routing accuracy). The split is per source: each source's documents are shuffled with the seed, the first
/// <c>round(HeldOutFraction · n)</c> are held out (at least one when n ≥ 2 and the fraction is positive), the rest
/// train; both parts keep the source order. Same sources and options, same split.
/// </summary>
public sealed class DomainCorpus
{
    private const string Format = "yinghub-domain-corpus";
    private const int FormatVersion = 1;

    /// <summary>A corpus of the given parts.</summary>
    public DomainCorpus(IReadOnlyList<DomainDocument> train, IReadOnlyList<DomainDocument> heldOut)
    {
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(heldOut);
        Train = train;
        HeldOut = heldOut;
    }

    /// <summary>The training documents.</summary>
    public IReadOnlyList<DomainDocument> Train { get; }

    /// <summary>The held-out documents.</summary>
    public IReadOnlyList<DomainDocument> HeldOut { get; }

    /// <summary>The distinct known domains, in order of first appearance in <see cref="Train"/> then <see cref="HeldOut"/>.</summary>
    public IReadOnlyList<string> Domains => Train.Concat(HeldOut).Select(d => d.Domain).OfType<string>().Distinct(StringComparer.Ordinal).ToArray();

    /// <summary>Reads every source and splits its documents (see the class summary).</summary>
    /// <exception cref="ArgumentException">Invalid options or source, or no source.</exception>
    public static DomainCorpus Build(IEnumerable<DomainSource> sources, DomainCorpusOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(sources);
        options ??= new DomainCorpusOptions();
        options.ThrowIfInvalid(nameof(options));
        var all = sources.ToArray();
        if (all.Length == 0) throw new ArgumentException("At least one DomainSource is needed.", nameof(sources));
        var random = new Random(options.Seed);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var train = new List<DomainDocument>();
        var heldOut = new List<DomainDocument>();
        foreach (DomainSource source in all)
        {
            var documents = source.Read().Where(d => !options.DropDuplicates || seen.Add(d.Text)).ToArray();
            int[] order = Shuffled(documents.Length, random);
            if (source.MaxDocuments is int max && max < order.Length) order = order[..max];
            int held = documents.Length < 2 || options.HeldOutFraction == 0 ? 0 : Math.Max(1, (int)Math.Round(options.HeldOutFraction * order.Length));
            held = Math.Min(held, order.Length - 1);
            var heldSet = order[..held].ToHashSet();
            var keep = order.ToHashSet();
            for (int i = 0; i < documents.Length; i++)
            {
                if (!keep.Contains(i)) continue;
                (heldSet.Contains(i) ? heldOut : train).Add(documents[i]);
            }
        }

        return new DomainCorpus(train, heldOut);
    }

    /// <summary>
    /// The three-domain corpus of the Hydra benchmark: <c>shakespeare</c> (Tiny Shakespeare, e.g.
    /// <c>/work/shared/data/tinyshakespeare.txt</c>), <c>license</c> (the licence texts every Debian system ships in
    /// <c>/usr/share/common-licenses</c>) and <c>csharp</c> (the <c>*.cs</c> files under a directory, recursively), each
    /// cut into documents of <paramref name="chunkCharacters"/> characters and sampled down to
    /// <paramref name="maxDocumentsPerDomain"/>.
    /// </summary>
    public static DomainCorpus BuildDefault(string shakespearePath, string csharpDirectory, string licensesDirectory = "/usr/share/common-licenses",
        int chunkCharacters = 1000, int? maxDocumentsPerDomain = 300, DomainCorpusOptions? options = null) =>
        Build(
        [
            DomainSource.FromFile("shakespeare", shakespearePath, chunkCharacters, maxDocumentsPerDomain),
            DomainSource.FromDirectory("license", licensesDirectory, "*", recursive: false, chunkCharacters, maxDocumentsPerDomain),
            DomainSource.FromDirectory("csharp", csharpDirectory, "*.cs", recursive: true, chunkCharacters, maxDocumentsPerDomain),
        ], options);

    /// <summary>Writes the split as JSON, atomically.</summary>
    public void Save(string path) =>
        AtomicFile.WriteAllText(path, JsonSerializer.Serialize(new CorpusFile(Format, FormatVersion, [.. Train], [.. HeldOut]), Json));

    /// <summary>Reads a split written by <see cref="Save"/>.</summary>
    /// <exception cref="InvalidDataException">The file is not a corpus of this format.</exception>
    public static DomainCorpus Load(string path)
    {
        CorpusFile? file = JsonSerializer.Deserialize<CorpusFile>(File.ReadAllText(path), Json);
        if (file is null || file.Format != Format || file.Version != FormatVersion || file.Train is null || file.HeldOut is null)
            throw new InvalidDataException($"'{path}' is not a {Format} file of version {FormatVersion}.");
        return new DomainCorpus(file.Train, file.HeldOut);
    }

    private static int[] Shuffled(int n, Random random)
    {
        int[] order = Enumerable.Range(0, n).ToArray();
        for (int i = n - 1; i > 0; i--)
        {
            int j = random.Next(i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }

        return order;
    }

    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = false };

    private sealed record CorpusFile(string Format, int Version, DomainDocument[]? Train, DomainDocument[]? HeldOut);
}
