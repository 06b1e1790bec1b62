using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Training.Adapters.Hydra;

/// <summary>Settings of <see cref="KMeans"/>, named after scikit-learn's <c>KMeans</c> where it has them.</summary>
public sealed class KMeansOptions : IValidatableOptions
{
    /// <summary>The number of clusters k (<c>n_clusters</c>); [1, 65536] and at most the number of points.</summary>
    public int Clusters { get; set; } = 3;

    /// <summary>Independent k-means++ runs; the one with the lowest inertia is kept (<c>n_init</c>); [1, 1000].</summary>
    public int Restarts { get; set; } = 4;

    /// <summary>Lloyd iterations per run at most (<c>max_iter</c>); [1, 100000].</summary>
    public int MaxIterations { get; set; } = 300;

    /// <summary>
    /// A run stops when the squared centre shift of an iteration, summed over centres, is at most
    /// <c>Tolerance · mean over features of the data's variance</c> (<c>tol</c>, as scikit-learn); finite and ≥ 0.
    /// </summary>
    public double Tolerance { get; set; } = 1e-4;

    /// <summary>Seed of the k-means++ draws (and of the silhouette sample); any value.</summary>
    public long Seed { get; set; }

    /// <summary>Up to this many points the silhouette is exact (O(n²) distances); above it, a seeded sample of <see cref="SilhouetteSampleSize"/> points is scored against all points; [2, 100000].</summary>
    public int SilhouetteExactLimit { get; set; } = 4000;

    /// <summary>The sample scored above <see cref="SilhouetteExactLimit"/>; [2, <see cref="SilhouetteExactLimit"/>].</summary>
    public int SilhouetteSampleSize { get; set; } = 2000;

    /// <summary>Every problem, naming the field, its value and the allowed range.</summary>
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        errors.Require(Clusters is >= 1 and <= 65536, nameof(Clusters), Clusters, "[1, 65536]");
        errors.Require(Restarts is >= 1 and <= 1000, nameof(Restarts), Restarts, "[1, 1000]");
        errors.Require(MaxIterations is >= 1 and <= 100000, nameof(MaxIterations), MaxIterations, "[1, 100000]");
        errors.Require(double.IsFinite(Tolerance) && Tolerance >= 0, nameof(Tolerance), Tolerance, "finite and >= 0");
        errors.Require(SilhouetteExactLimit is >= 2 and <= 100000, nameof(SilhouetteExactLimit), SilhouetteExactLimit, "[2, 100000]");
        errors.Require(SilhouetteSampleSize >= 2 && SilhouetteSampleSize <= SilhouetteExactLimit, nameof(SilhouetteSampleSize), SilhouetteSampleSize, $"[2, SilhouetteExactLimit = {SilhouetteExactLimit}]");
        return errors;
    }
}
