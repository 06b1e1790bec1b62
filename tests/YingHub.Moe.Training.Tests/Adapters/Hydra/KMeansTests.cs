using TorchSharp;
using YingHub.Moe.Training.Adapters.Hydra;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Tests.Adapters.Hydra;

public sealed class KMeansTests
{
    /// <summary>Three well-separated Gaussian blobs in 5-D: 30 points each, std 0.5, centres 10 apart.</summary>
    private static (Tensor Points, int[] Blob) Blobs(int seed = 11)
    {
        using var generator = new Generator((ulong)seed);
        var centres = new double[][] { [0, 0, 0, 0, 0], [10, 0, 0, 0, 0], [0, 10, 0, 10, 0] };
        var rows = new List<Tensor>();
        var blob = new List<int>();
        for (int c = 0; c < centres.Length; c++)
        {
            rows.Add(torch.tensor(centres[c]).unsqueeze(0) + 0.5 * torch.randn([30, 5], ScalarType.Float64, generator: generator));
            blob.AddRange(Enumerable.Repeat(c, 30));
        }

        return (torch.cat(rows, 0).to(ScalarType.Float32), blob.ToArray());
    }

    [Fact]
    public void Recovers_planted_blobs_and_its_inertia_equals_a_naive_sum()
    {
        var (points, blob) = Blobs();
        using var _ = points;
        using var result = KMeans.Fit(points, new KMeansOptions { Clusters = 3, Restarts = 3, Seed = 5 });

        // every blob lands in one cluster, and the three clusters differ
        int[] clusterOfBlob = Enumerable.Range(0, 3).Select(b => (int)result.Labels[Array.IndexOf(blob, b)]).ToArray();
        for (int i = 0; i < blob.Length; i++) Assert.Equal(clusterOfBlob[blob[i]], result.Labels[i]);
        Assert.Equal(3, clusterOfBlob.Distinct().Count());

        // inertia and centres against loops over the host arrays
        float[] x = points.data<float>().ToArray();
        float[] c = result.Centroids.data<float>().ToArray();
        double inertia = 0;
        for (int i = 0; i < blob.Length; i++)
            for (int d = 0; d < 5; d++) inertia += Math.Pow(x[i * 5 + d] - c[result.Labels[i] * 5 + d], 2);
        Assert.Equal(inertia, result.Inertia, inertia * 1e-5);
        for (int k = 0; k < 3; k++)
        {
            int[] members = Enumerable.Range(0, blob.Length).Where(i => result.Labels[i] == k).ToArray();
            for (int d = 0; d < 5; d++) Assert.Equal(members.Average(i => (double)x[i * 5 + d]), c[k * 5 + d], 1e-4);
        }

        Assert.Equal(3, result.RestartInertias.Count);
        Assert.Equal(result.RestartInertias.Min(), result.Inertia);
        Assert.False(result.SilhouetteSampled);
        Assert.True(result.Silhouette > 0.8, $"silhouette {result.Silhouette}");
    }

    [Fact]
    public void Keeps_the_restart_with_the_lowest_inertia()
    {
        // uniform points have many local minima: restarts end at different inertias
        using var generator = new Generator(2);
        using var points = torch.rand([60, 2], generator: generator);
        bool sawDifferentRestarts = false;
        for (long seed = 0; seed < 10; seed++)
        {
            using var result = KMeans.Fit(points, new KMeansOptions { Clusters = 6, Restarts = 5, Seed = seed });
            sawDifferentRestarts |= result.RestartInertias.Distinct().Count() > 1;
            Assert.Equal(result.RestartInertias.Min(), result.Inertia);
        }

        Assert.True(sawDifferentRestarts, "the data must give restarts of different inertia for this test to mean anything");
    }

    [Fact]
    public void Same_seed_same_clustering()
    {
        var (points, _) = Blobs(seed: 4);
        using var __ = points;
        using var a = KMeans.Fit(points, new KMeansOptions { Clusters = 4, Restarts = 2, Seed = 9 });
        using var b = KMeans.Fit(points, new KMeansOptions { Clusters = 4, Restarts = 2, Seed = 9 });
        Assert.Equal(a.Labels, b.Labels);
        Assert.Equal(a.Inertia, b.Inertia);
    }

    [Fact]
    public void Silhouette_equals_a_naive_loop_on_a_hand_example()
    {
        double[][] x = [[0, 0], [2, 0], [10, 1], [12, 0], [11, 3], [30, 30]];
        long[] labels = [0, 0, 1, 1, 1, 2];           // cluster 2 is a single point: s = 0 there
        double Distance(int i, int j) => Math.Sqrt(Math.Pow(x[i][0] - x[j][0], 2) + Math.Pow(x[i][1] - x[j][1], 2));
        double total = 0;
        for (int i = 0; i < x.Length; i++)
        {
            int[] own = Enumerable.Range(0, x.Length).Where(j => j != i && labels[j] == labels[i]).ToArray();
            if (own.Length == 0) continue;            // s = 0
            double a = own.Average(j => Distance(i, j));
            double b = labels.Distinct().Where(l => l != labels[i])
                .Min(l => Enumerable.Range(0, x.Length).Where(j => labels[j] == l).Average(j => Distance(i, j)));
            total += (b - a) / Math.Max(a, b);
        }

        using var points = torch.tensor(x.SelectMany(r => r).ToArray(), [6, 2]);
        var (silhouette, scored) = KMeans.Silhouette(points, labels);
        Assert.Equal(total / x.Length, silhouette, 1e-12);
        Assert.Equal(6, scored);
        // n equal to the exact limit is still scored exactly
        Assert.Equal(total / x.Length, KMeans.Silhouette(points, labels, exactLimit: 6).Silhouette);
    }

    [Fact]
    public void Sampled_silhouette_scores_the_sample_only()
    {
        var (points, blob) = Blobs();
        using var _ = points;
        var (exact, all) = KMeans.Silhouette(points, blob.Select(b => (long)b).ToArray());
        var (sampled, some) = KMeans.Silhouette(points, blob.Select(b => (long)b).ToArray(), exactLimit: 40, sampleSize: 20, seed: 3);
        Assert.Equal(90, all);
        Assert.Equal(20, some);
        Assert.Equal(exact, sampled, 0.05);           // well-separated blobs: every point scores near the mean
    }

    [Fact]
    public void Plus_plus_takes_the_first_centre_from_the_seeded_draw()
    {
        var (points, _) = Blobs();
        using var __ = points;
        for (ulong seed = 0; seed < 5; seed++)
        {
            using var generator = new Generator(seed);
            long[] seeds = KMeans.PlusPlusSeeds(points, 3, generator);
            using var reference = new Generator(seed);
            Assert.Equal(torch.randint(0, 90, [1], generator: reference).item<long>(), seeds[0]);
        }
    }

    [Fact]
    public void Plus_plus_never_picks_an_existing_centre_even_among_copies()
    {
        // four distinct points, each repeated five times: k = 4 must pick each value once
        double[][] distinct = [[0, 0], [1, 0], [0, 1], [5, 5]];
        using var points = torch.tensor(Enumerable.Range(0, 20).SelectMany(i => distinct[i % 4]).ToArray(), [20, 2]);
        for (ulong seed = 0; seed < 20; seed++)
        {
            using var generator = new Generator(seed);
            long[] seeds = KMeans.PlusPlusSeeds(points, 4, generator);
            Assert.Equal(4, seeds.Select(s => s % 4).Distinct().Count());
        }

        using var again = new Generator(1);
        var error = Assert.Throws<ArgumentException>(() => KMeans.PlusPlusSeeds(points, 5, again));
        Assert.Contains("only 4", error.Message);
    }

    [Fact]
    public void Bad_input_is_named()
    {
        using var points = torch.zeros(2, 3);
        Assert.Contains("at least k points", Assert.Throws<ArgumentException>(() => KMeans.Fit(points, new KMeansOptions { Clusters = 3 })).Message);
        using var flat = torch.zeros(5);
        Assert.Contains("2-D", Assert.Throws<ArgumentException>(() => KMeans.Fit(flat, new KMeansOptions { Clusters = 1 })).Message);
        using var nan = torch.tensor(new float[] { 0, float.NaN, 1, 2 }, [2, 2]);
        Assert.Contains("finite", Assert.Throws<ArgumentException>(() => KMeans.Fit(nan, new KMeansOptions { Clusters = 1 })).Message);
        var options = new KMeansOptions { Clusters = 0, SilhouetteSampleSize = 5000 };
        Assert.Equal(["Clusters", "SilhouetteSampleSize"], options.GetValidationErrors().Select(e => e.Field));
    }
}
