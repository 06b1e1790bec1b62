using static TorchSharp.torch;

namespace YingHub.Moe.Training.Adapters.Hydra;

/// <summary>The best run of <see cref="KMeans.Fit"/>. Owns <see cref="Centroids"/>.</summary>
/// <param name="Centroids">The cluster centres (k, D), float32, CPU.</param>
/// <param name="Labels">Each point's cluster, in [0, k).</param>
/// <param name="Inertia">Σ over points of the squared Euclidean distance to its centre.</param>
/// <param name="Iterations">Lloyd iterations of the kept run.</param>
/// <param name="RestartInertias">The final inertia of every run, in run order.</param>
/// <param name="Silhouette">The mean silhouette (see <see cref="KMeans.Silhouette"/>); NaN when fewer than two clusters hold points.</param>
/// <param name="SilhouettePoints">How many points the silhouette averages: all of them, or the sample when there are more than <see cref="KMeansOptions.SilhouetteExactLimit"/>.</param>
public sealed record KMeansResult(Tensor Centroids, long[] Labels, double Inertia, int Iterations, IReadOnlyList<double> RestartInertias,
    double Silhouette, int SilhouettePoints) : IDisposable
{
    /// <summary>Whether <see cref="Silhouette"/> was computed on a sample rather than on every point.</summary>
    public bool SilhouetteSampled => SilhouettePoints < Labels.Length;

    /// <summary>The number of points in each cluster.</summary>
    public int[] ClusterSizes()
    {
        var sizes = new int[Centroids.size(0)];
        foreach (long label in Labels) sizes[label]++;
        return sizes;
    }

    /// <inheritdoc />
    public void Dispose() => Centroids.Dispose();
}
