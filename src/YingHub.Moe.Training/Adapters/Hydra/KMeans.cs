using TorchSharp;
using YingHub.Moe.Core.Configuration;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Adapters.Hydra;

/// <summary>
/// k-means (Lloyd's algorithm) with k-means++ seeding (Arthur and Vassilvitskii 2007), vectorised with torch in float64
/// on the CPU. Each of <see cref="KMeansOptions.Restarts"/> runs draws its seeds from one generator seeded with
/// <see cref="KMeansOptions.Seed"/>, so a fit is reproducible; the run with the lowest inertia is kept. A cluster that
/// loses all its points is re-seeded at the point farthest from its centre (the farthest first when several are empty).
/// </summary>
public static class KMeans
{
    /// <summary>Clusters the rows of <paramref name="points"/> (N, D).</summary>
    /// <exception cref="ArgumentException">Invalid options; points not 2-D, not finite, fewer than k, or with fewer than k distinct rows.</exception>
    public static KMeansResult Fit(Tensor points, KMeansOptions options)
    {
        ArgumentNullException.ThrowIfNull(points);
        ArgumentNullException.ThrowIfNull(options);
        options.ThrowIfInvalid(nameof(options));
        CheckPoints(points, options.Clusters);
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var x = points.detach().to(ScalarType.Float64, torch.CPU);                        // (N, D)
        double tolerance = options.Tolerance * x.var(0, unbiased: false).mean().item<double>();
        using var generator = new Generator((ulong)options.Seed);
        var inertias = new List<double>();
        Tensor? best = null;
        long[]? bestLabels = null;
        double bestInertia = double.PositiveInfinity;
        int bestIterations = 0;
        for (int run = 0; run < options.Restarts; run++)
        {
            using var init = torch.tensor(PlusPlusSeeds(x, options.Clusters, generator));
            var (centres, labels, inertia, iterations) = Lloyd(x, x.index_select(0, init), options.MaxIterations, tolerance);
            inertias.Add(inertia);
            if (inertia < bestInertia)
            {
                best = centres;
                bestLabels = labels;
                bestInertia = inertia;
                bestIterations = iterations;
            }
        }

        var (silhouette, scored) = Silhouette(x, bestLabels!, options.SilhouetteExactLimit, options.SilhouetteSampleSize, options.Seed);
        return new KMeansResult(best!.to(ScalarType.Float32).MoveToOuterDisposeScope(), bestLabels!, bestInertia, bestIterations, inertias, silhouette, scored);
    }

    /// <summary>
    /// k-means++ seeding: the first centre is row <c>randint(0, N)</c> drawn from <paramref name="generator"/>; each next
    /// one is drawn (<c>multinomial</c>, same generator) with probability proportional to the squared distance to the
    /// nearest centre chosen so far, so a chosen row (or a copy of it) is never drawn again.
    /// </summary>
    /// <returns>The k row indices, in draw order.</returns>
    /// <exception cref="ArgumentException">Fewer than k distinct rows.</exception>
    public static long[] PlusPlusSeeds(Tensor points, int k, Generator generator)
    {
        ArgumentNullException.ThrowIfNull(points);
        ArgumentNullException.ThrowIfNull(generator);
        CheckPoints(points, k);
        using var scope = torch.NewDisposeScope();
        var x = points.to(ScalarType.Float64);                                              // (N, D)
        var seeds = new long[k];
        seeds[0] = torch.randint(0, x.size(0), [1], generator: generator).item<long>();
        var nearest = x.sub(x[seeds[0]]).square().sum(dim: 1);                              // (N)
        for (int j = 1; j < k; j++)
        {
            if (nearest.sum().item<double>() <= 0)
                throw new ArgumentException($"k-means++ needs {k} distinct points; the {x.size(0)} points have only {j}.", nameof(points));
            seeds[j] = torch.multinomial(nearest, 1, generator: generator).item<long>();
            nearest = torch.minimum(nearest, x.sub(x[seeds[j]]).square().sum(dim: 1));   // (N)
        }

        return seeds;
    }

    /// <summary>
    /// The mean silhouette of a clustering (Rousseeuw 1987, as scikit-learn's <c>silhouette_score</c>): for point i in
    /// cluster A, a = mean Euclidean distance to the other points of A, b = the smallest mean distance to the points of
    /// another non-empty cluster, s = (b − a) / max(a, b), and s = 0 when A holds only i (or max(a, b) = 0). With more
    /// than <paramref name="exactLimit"/> points, only a seeded sample of <paramref name="sampleSize"/> points is
    /// scored (each against all points).
    /// </summary>
    /// <returns>The mean s (NaN when fewer than two clusters hold points) and how many points it averages.</returns>
    public static (double Silhouette, int Points) Silhouette(Tensor points, IReadOnlyList<long> labels, int exactLimit = 4000, int sampleSize = 2000, long seed = 0)
    {
        ArgumentNullException.ThrowIfNull(points);
        ArgumentNullException.ThrowIfNull(labels);
        if (points.dim() != 2 || points.size(0) != labels.Count)
            throw new ArgumentException($"Points of shape [{string.Join(", ", points.shape)}] need one label each; got {labels.Count} labels.", nameof(labels));
        if (labels.Any(l => l < 0)) throw new ArgumentException("Labels must be non-negative.", nameof(labels));
        int n = labels.Count;
        int clusters = (int)labels.Max() + 1;
        if (labels.Distinct().Count() < 2) return (double.NaN, n);
        using var scope = torch.NewDisposeScope();
        var x = points.to(ScalarType.Float64, torch.CPU);                                   // (N, D)
        var label = torch.tensor(labels.ToArray());                                          // (N)
        using var generator = new Generator((ulong)seed);
        var rows = n <= exactLimit
            ? torch.arange(n)
            : torch.randperm(n, generator: generator)[..sampleSize];                         // (S)
        var oneHot = torch.nn.functional.one_hot(label, clusters).to(ScalarType.Float64);   // (N, K)
        var sums = torch.cdist(x.index_select(0, rows), x).matmul(oneHot);                 // (S, K): Σ distances to each cluster
        var counts = oneHot.sum(dim: 0);                                                     // (K)
        var own = label.index_select(0, rows).unsqueeze(1);                                  // (S, 1)
        var ownCount = counts.index_select(0, own.squeeze(1));                               // (S)
        var a = sums.gather(1, own).squeeze(1) / (ownCount - 1).clamp_min(1);                // (S): self distance is 0
        var means = (sums / counts.clamp_min(1)).masked_fill(counts.eq(0), double.PositiveInfinity); // (S, K)
        var b = means.scatter(1, own, torch.full([rows.size(0), 1], double.PositiveInfinity, ScalarType.Float64)).amin(1); // (S)
        var denominator = torch.maximum(a, b);
        var s = ((b - a) / denominator).masked_fill(denominator.eq(0).logical_or(ownCount.le(1)), 0); // (S)
        return (s.mean().item<double>(), (int)rows.size(0));
    }

    private static (Tensor Centres, long[] Labels, double Inertia, int Iterations) Lloyd(Tensor x, Tensor start, int maxIterations, double tolerance)
    {
        long k = start.size(0);
        var centres = start.clone();                                                         // (K, D)
        int iterations = 0;
        for (; iterations < maxIterations;)
        {
            using var step = torch.NewDisposeScope();
            iterations++;
            var distances = SquaredDistances(x, centres);                                    // (N, K)
            var labels = distances.argmin(1);                                                // (N)
            var counts = torch.bincount(labels, null, k);                                    // (K)
            var sums = torch.zeros(k, x.size(1), ScalarType.Float64).index_add_(0, labels, x, 1); // (K, D)
            var next = sums / counts.clamp_min(1).unsqueeze(1).to(ScalarType.Float64);      // (K, D)
            long[] empty = torch.nonzero(counts.eq(0)).reshape(-1).data<long>().ToArray();
            if (empty.Length > 0)
            {
                var own = distances.gather(1, labels.unsqueeze(1)).squeeze(1);               // (N): distance to own centre
                var farthest = own.topk(empty.Length).indexes;                               // (E)
                next.index_copy_(0, torch.tensor(empty), x.index_select(0, farthest));
            }

            double shift = next.sub(centres).square().sum().item<double>();
            centres.Dispose();
            centres = next.MoveToOuterDisposeScope();
            if (shift <= tolerance) break;
        }

        using var final = torch.NewDisposeScope();
        var finalLabels = SquaredDistances(x, centres).argmin(1);                            // (N)
        double inertia = x.sub(centres.index_select(0, finalLabels)).square().sum().item<double>();
        return (centres, finalLabels.data<long>().ToArray(), inertia, iterations);
    }

    /// <summary>‖x_i − c_j‖² for every point and centre (N, K), by ‖x‖² − 2 x·c + ‖c‖², clamped at 0.</summary>
    private static Tensor SquaredDistances(Tensor x, Tensor centres) =>
        (x.square().sum(dim: 1, keepdim: true) - 2 * x.matmul(centres.t()) + centres.square().sum(dim: 1).unsqueeze(0)).clamp_min(0); // (N, K)

    private static void CheckPoints(Tensor points, int k)
    {
        using var scope = torch.NewDisposeScope();
        if (points.dim() != 2) throw new ArgumentException($"Points must be 2-D (N, D); got shape [{string.Join(", ", points.shape)}].", nameof(points));
        if (k < 1 || points.size(0) < k) throw new ArgumentException($"k = {k} clusters need at least k points; got {points.size(0)}.", nameof(points));
        if (!points.isfinite().all().item<bool>()) throw new ArgumentException("Points must be finite (a NaN or infinity was found).", nameof(points));
    }
}
