using TorchSharp;
using YingHub.Moe.Core.Configuration;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Adapters.Hydra;

/// <summary>
/// Routes by cosine similarity to one centroid per adapter (e.g. the k-means centres of the domains): logits are
/// <c>cos(e, c_j) / Temperature</c>, so a top-k mix weighs adapter j by softmax(cos / T) over the k best. A new domain
/// is one more centroid (<see cref="AddDomain(string, Tensor)"/>); nothing else changes. Owns its centroids.
/// </summary>
public sealed class CentroidRouter : IAdapterRouter, IDisposable
{
    internal const string Kind = "centroid";
    private readonly List<string> _names;
    private readonly CentroidRouterOptions _options;
    private Tensor _centroids; // (K, D) float32, CPU

    /// <summary>A router over <paramref name="centroids"/> (K, D), one row per adapter of <paramref name="names"/> (copied).</summary>
    /// <exception cref="ArgumentException">Invalid options, a shape that does not fit the names, a duplicate or blank name, a zero or non-finite centroid, or TopK above K.</exception>
    public CentroidRouter(Tensor centroids, IReadOnlyList<string> names, CentroidRouterOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(centroids);
        ArgumentNullException.ThrowIfNull(names);
        _options = options ?? new CentroidRouterOptions();
        _options.ThrowIfInvalid(nameof(options));
        if (centroids.dim() != 2 || centroids.size(0) != names.Count)
            throw new ArgumentException($"Centroids must be (K = {names.Count}, D), one per name; got shape [{string.Join(", ", centroids.shape)}].", nameof(centroids));
        _names = [];
        foreach (string name in names)
        {
            CheckName(name);
            _names.Add(name);
        }

        CheckRows(centroids);
        _centroids = Owned(centroids);
        if (_options.TopK > _names.Count) throw new ArgumentException($"TopK = {_options.TopK} exceeds the {_names.Count} adapters.", nameof(options));
    }

    /// <inheritdoc />
    public IReadOnlyList<string> AdapterNames => _names;

    /// <inheritdoc />
    public int TopK => _options.TopK;

    /// <summary>The temperature T of the logits cos / T.</summary>
    public double Temperature => _options.Temperature;

    /// <summary>The embedding size D.</summary>
    public long Dimension => _centroids.size(1);

    /// <summary>A copy of the centroids (K, D) float32; the caller owns it.</summary>
    public Tensor Centroids => _centroids.clone();

    /// <inheritdoc />
    public Tensor Logits(Tensor embeddings)
    {
        AdapterRouting.CheckEmbeddings(embeddings, Dimension);
        using var scope = torch.NewDisposeScope();
        var e = nn.functional.normalize(embeddings.detach().to(ScalarType.Float32, CPU), dim: 1); // (B, D)
        var c = nn.functional.normalize(_centroids, dim: 1);                                      // (K, D)
        return (e.matmul(c.t()) / _options.Temperature).MoveToOuterDisposeScope();               // (B, K)
    }

    /// <summary>Adds an adapter whose centroid is <paramref name="centroid"/> (D); the other centroids do not change.</summary>
    public void AddDomain(string name, Tensor centroid)
    {
        ArgumentNullException.ThrowIfNull(centroid);
        CheckName(name);
        if (centroid.dim() != 1 || centroid.size(0) != Dimension)
            throw new ArgumentException($"The centroid of '{name}' must be ({Dimension}); got shape [{string.Join(", ", centroid.shape)}].", nameof(centroid));
        using var row = centroid.detach().to(ScalarType.Float32, CPU).unsqueeze(0);                // (1, D)
        CheckRows(row);
        var next = torch.cat([_centroids, row], 0).DetachFromDisposeScope();                        // (K + 1, D)
        _centroids.Dispose();
        _centroids = next;
        _names.Add(name);
    }

    /// <summary>Adds an adapter whose centroid is the mean of <paramref name="embeddings"/> (N, D) of its documents.</summary>
    public void AddDomainFromEmbeddings(string name, Tensor embeddings)
    {
        AdapterRouting.CheckEmbeddings(embeddings, Dimension);
        if (embeddings.size(0) == 0) throw new ArgumentException($"Domain '{name}' needs at least one embedding.", nameof(embeddings));
        using var mean = embeddings.mean([0]);                                                      // (D)
        AddDomain(name, mean);
    }

    /// <inheritdoc />
    public void Save(string path) =>
        new RouterFile(RouterFile.FormatName, RouterFile.FormatVersion, Kind, [.. _names], TopK, Temperature,
            new() { ["centroids"] = RouterFile.From(_centroids) }).Write(path);

    internal static CentroidRouter FromFile(RouterFile file, string path)
    {
        using var centroids = file.Tensor("centroids", path);
        return new CentroidRouter(centroids, file.Names, new CentroidRouterOptions { TopK = file.TopK, Temperature = file.Temperature });
    }

    /// <inheritdoc />
    public void Dispose() => _centroids.Dispose();

    private void CheckName(string name)
    {
        if (string.IsNullOrWhiteSpace(name)) throw new ArgumentException($"Adapter name '{name}' must not be blank.", nameof(name));
        if (_names.Contains(name, StringComparer.Ordinal)) throw new ArgumentException($"Adapter name '{name}' is already routed to.", nameof(name));
    }

    /// <summary>A float32 CPU copy that no dispose scope tracks: the router owns it, whatever scope its caller has open.</summary>
    private static Tensor Owned(Tensor t)
    {
        using var scope = torch.NewDisposeScope();
        return t.detach().to(ScalarType.Float32, CPU).clone().DetachFromDisposeScope();
    }

    private static void CheckRows(Tensor rows)
    {
        using var scope = torch.NewDisposeScope();
        if (!rows.isfinite().all().item<bool>()) throw new ArgumentException("Centroids must be finite.", nameof(rows));
        var norms = rows.to(ScalarType.Float64).norm(1);                                           // (K)
        long[] zero = torch.nonzero(norms.eq(0)).reshape(-1).data<long>().ToArray();
        if (zero.Length > 0) throw new ArgumentException($"Centroid row(s) {string.Join(", ", zero)} are zero: cosine similarity is undefined.", nameof(rows));
    }
}
