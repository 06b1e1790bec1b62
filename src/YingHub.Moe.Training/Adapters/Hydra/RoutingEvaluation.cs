namespace YingHub.Moe.Training.Adapters.Hydra;

/// <summary>How well routing sends documents to their own domain's adapter.</summary>
/// <param name="Domains">The domains, in row and column order of <see cref="Confusion"/>, ordinal; a last column <c>(none)</c> when an adapter has no domain.</param>
/// <param name="Confusion">Confusion[i][j]: documents of domain i sent to an adapter of domain j (rows: true domains; columns: <see cref="Domains"/>).</param>
/// <param name="Correct">Documents sent to an adapter of their own domain.</param>
/// <param name="Total">Documents scored (those with a known domain).</param>
public sealed record RoutingAccuracy(IReadOnlyList<string> Domains, int[][] Confusion, int Correct, int Total)
{
    /// <summary>Correct / Total (NaN when nothing was scored).</summary>
    public double Accuracy => Total == 0 ? double.NaN : (double)Correct / Total;

    /// <summary>The confusion matrix as Markdown, true domains as rows.</summary>
    public string ToMarkdown()
    {
        var lines = new List<string>
        {
            "| true \\ routed | " + string.Join(" | ", Domains) + " |",
            "| --- |" + string.Concat(Domains.Select(_ => " ---: |")),
        };
        for (int i = 0; i < Confusion.Length; i++) lines.Add($"| {Domains[i]} | " + string.Join(" | ", Confusion[i]) + " |");
        return string.Join('\n', lines);
    }
}

/// <summary>
/// Routing accuracy on held-out documents: clusters (adapters) are named after domains by a majority vote of the
/// training documents, and a held-out document counts as correct when its top-1 adapter's domain is its own.
/// </summary>
public static class RoutingEvaluation
{
    /// <summary>
    /// Each cluster's domain: the most frequent known domain among the training documents assigned to it (ties: the
    /// ordinally smallest name); null for a cluster without a labelled document.
    /// </summary>
    public static string?[] MajorityDomains(IReadOnlyList<long> clusters, IReadOnlyList<string?> domains, int clusterCount)
    {
        ArgumentNullException.ThrowIfNull(clusters);
        ArgumentNullException.ThrowIfNull(domains);
        CheckPairs(clusters, domains, clusterCount);
        var result = new string?[clusterCount];
        for (int c = 0; c < clusterCount; c++)
        {
            result[c] = Enumerable.Range(0, clusters.Count)
                .Where(i => clusters[i] == c && domains[i] is not null)
                .GroupBy(i => domains[i]!, StringComparer.Ordinal)
                .OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal)
                .Select(g => g.Key).FirstOrDefault();
        }

        return result;
    }

    /// <summary>Cluster purity: Σ over clusters of its majority-domain count, over the labelled documents (NaN with none).</summary>
    public static double Purity(IReadOnlyList<long> clusters, IReadOnlyList<string?> domains, int clusterCount)
    {
        ArgumentNullException.ThrowIfNull(clusters);
        ArgumentNullException.ThrowIfNull(domains);
        CheckPairs(clusters, domains, clusterCount);
        var labelled = Enumerable.Range(0, clusters.Count).Where(i => domains[i] is not null).ToArray();
        if (labelled.Length == 0) return double.NaN;
        int majority = labelled.GroupBy(i => clusters[i]).Sum(g => g.GroupBy(i => domains[i]!, StringComparer.Ordinal).Max(d => d.Count()));
        return (double)majority / labelled.Length;
    }

    /// <summary>Scores routed adapters (top-1 indices) against the documents' own domains.</summary>
    /// <param name="routed">Each document's adapter index.</param>
    /// <param name="adapterDomains">Each adapter's domain (null: an adapter of no known domain; routing there is wrong).</param>
    /// <param name="domains">Each document's true domain (null: not scored).</param>
    public static RoutingAccuracy Score(IReadOnlyList<int> routed, IReadOnlyList<string?> adapterDomains, IReadOnlyList<string?> domains)
    {
        ArgumentNullException.ThrowIfNull(routed);
        ArgumentNullException.ThrowIfNull(adapterDomains);
        ArgumentNullException.ThrowIfNull(domains);
        if (routed.Count != domains.Count) throw new ArgumentException($"{routed.Count} routed documents but {domains.Count} domains.", nameof(domains));
        int bad = routed.ToList().FindIndex(r => r < 0 || r >= adapterDomains.Count);
        if (bad >= 0) throw new ArgumentException($"Document {bad} was routed to adapter {routed[bad]}, outside [0, {adapterDomains.Count}).", nameof(routed));
        string[] names = domains.Concat(adapterDomains).OfType<string>().Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
        var column = names.Select((n, i) => (n, i)).ToDictionary(p => p.n, p => p.i, StringComparer.Ordinal);
        bool unnamed = adapterDomains.Any(d => d is null);
        int width = names.Length + (unnamed ? 1 : 0);
        int[][] confusion = names.Select(_ => new int[width]).ToArray();
        int correct = 0, total = 0;
        for (int i = 0; i < routed.Count; i++)
        {
            if (domains[i] is not string truth) continue;
            string? predicted = adapterDomains[routed[i]];
            confusion[column[truth]][predicted is null ? names.Length : column[predicted]]++;
            total++;
            if (predicted == truth) correct++;
        }

        return new RoutingAccuracy(unnamed ? [.. names, "(none)"] : names, confusion, correct, total);
    }

    /// <summary>Routes <paramref name="embeddings"/> (N, D) with <paramref name="router"/> (top-1) and scores the result (see <see cref="Score"/>).</summary>
    public static RoutingAccuracy Evaluate(IAdapterRouter router, TorchSharp.torch.Tensor embeddings, IReadOnlyList<string?> adapterDomains, IReadOnlyList<string?> domains)
    {
        ArgumentNullException.ThrowIfNull(router);
        if (adapterDomains.Count != router.AdapterNames.Count)
            throw new ArgumentException($"{adapterDomains.Count} adapter domains for {router.AdapterNames.Count} adapters.", nameof(adapterDomains));
        return Score(router.Top1(embeddings), adapterDomains, domains);
    }

    private static void CheckPairs(IReadOnlyList<long> clusters, IReadOnlyList<string?> domains, int clusterCount)
    {
        if (clusters.Count != domains.Count) throw new ArgumentException($"{clusters.Count} cluster labels but {domains.Count} domains.", nameof(domains));
        int bad = clusters.ToList().FindIndex(c => c < 0 || c >= clusterCount);
        if (bad >= 0) throw new ArgumentException($"Cluster label {clusters[bad]} (document {bad}) is outside [0, {clusterCount}).", nameof(clusters));
    }
}
