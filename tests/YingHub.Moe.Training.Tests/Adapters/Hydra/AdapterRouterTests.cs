using TorchSharp;
using YingHub.Moe.Training.Adapters.Hydra;
using static TorchSharp.torch;
using static YingHub.Moe.Training.Tests.Adapters.LoraTestModels;

namespace YingHub.Moe.Training.Tests.Adapters.Hydra;

public sealed class AdapterRouterTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "hydra-router-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    private static double Cosine(float[] a, float[] b) =>
        a.Zip(b).Sum(p => (double)p.First * p.Second) / Math.Sqrt(a.Sum(v => (double)v * v)) / Math.Sqrt(b.Sum(v => (double)v * v));

    [Fact]
    public void Centroid_router_weights_are_the_softmax_of_cosines()
    {
        using var generator = new Generator(3);
        using var centroids = torch.randn([4, 6], generator: generator);
        using var embedding = torch.randn([6], generator: generator);
        const double T = 0.25;
        using var router = new CentroidRouter(centroids, ["a", "b", "c", "d"], new CentroidRouterOptions { TopK = 2, Temperature = T });
        float[] e = embedding.data<float>().ToArray();
        double[] cos = Enumerable.Range(0, 4).Select(j => Cosine(e, centroids[j].data<float>().ToArray())).ToArray();
        int[] best = Enumerable.Range(0, 4).OrderByDescending(j => cos[j]).Take(2).ToArray();
        double z = best.Sum(j => Math.Exp(cos[j] / T));

        AdapterSelection[] selection = router.Select(embedding)[0];
        Assert.Equal(best, selection.Select(s => s.Index));
        Assert.Equal(best.Select(j => "abcd"[j].ToString()), selection.Select(s => s.Name));
        for (int i = 0; i < 2; i++) Assert.Equal(Math.Exp(cos[best[i]] / T) / z, selection[i].Weight, 1e-5);

        using var logits = router.Logits(embedding.unsqueeze(0));
        for (int j = 0; j < 4; j++) Assert.Equal(cos[j] / T, logits[0, j].item<float>(), 1e-5);
    }

    [Fact]
    public void Top1_has_weight_one_and_a_new_domain_leaves_the_others_alone()
    {
        using var centroids = torch.tensor(new float[] { 1, 0, 0, 0, 1, 0 }, [2, 3]);
        using var router = new CentroidRouter(centroids, ["x", "y"]);
        using var query = torch.tensor(new float[] { 0.2f, 0.1f, 0.9f, 0.9f, 0.1f, 0f }, [2, 3]);
        Assert.Equal([0, 0], router.Top1(query));       // both nearer x than y
        using var before = router.Logits(query);
        router.AddDomain("z", torch.tensor(new float[] { 0, 0, 1 }));
        Assert.Equal(["x", "y", "z"], router.AdapterNames);
        Assert.Equal([2, 0], router.Top1(query));
        using var after = router.Logits(query);
        Assert.True(BitEqual(after[.., ..2].contiguous(), before));       // the old logits are unchanged
        var selection = router.Select(query);
        Assert.Equal(1.0, selection[0].Single().Weight);
        Assert.Contains("already", Assert.Throws<ArgumentException>(() => router.AddDomain("x", torch.ones(3))).Message);
        Assert.Contains("zero", Assert.Throws<ArgumentException>(() => router.AddDomain("w", torch.zeros(3))).Message);
    }

    [Fact]
    public void Centroid_router_round_trips_through_json()
    {
        using var generator = new Generator(8);
        using var centroids = torch.randn([3, 5], generator: generator);
        using var router = new CentroidRouter(centroids, ["p", "q", "r"], new CentroidRouterOptions { TopK = 2, Temperature = 0.3 });
        string path = Path.Combine(_dir, "router.json");
        router.Save(path);
        var loaded = Assert.IsType<CentroidRouter>(AdapterRouting.Load(path));
        using var _ = loaded;
        Assert.Equal(router.AdapterNames, loaded.AdapterNames);
        Assert.Equal(2, loaded.TopK);
        using var a = router.Centroids;
        using var b = loaded.Centroids;
        Assert.True(BitEqual(a, b));                          // float32 round-trips exactly through JSON
    }

    /// <summary>Three linearly separable classes in 2-D: class c is centred at angle 2πc/3, radius 3, spread 0.3.</summary>
    private static (Tensor X, long[] Y) Separable(int perClass = 20)
    {
        using var generator = new Generator(21);
        var rows = new List<Tensor>();
        var labels = new List<long>();
        for (int c = 0; c < 3; c++)
        {
            double angle = 2 * Math.PI * c / 3;
            rows.Add(torch.tensor(new float[] { (float)(3 * Math.Cos(angle)), (float)(3 * Math.Sin(angle)) }).unsqueeze(0) + 0.3f * torch.randn([perClass, 2], generator: generator));
            labels.AddRange(Enumerable.Repeat((long)c, perClass));
        }

        return (torch.cat(rows, 0), labels.ToArray());
    }

    [Fact]
    public void Logistic_classifier_separates_separable_data_and_round_trips()
    {
        var (x, y) = Separable();
        using var _ = x;
        using var router = ClassifierRouter.Train(x, y, ["u", "v", "w"], new ClassifierRouterOptions { Steps = 200, LearningRate = 0.1 });
        Assert.Equal(y.Select(v => (int)v), router.Top1(x));
        Assert.True(router.FinalLoss < 0.1, $"loss {router.FinalLoss}");

        string path = Path.Combine(_dir, "classifier.json");
        router.Save(path);
        using var loaded = (ClassifierRouter)AdapterRouting.Load(path);
        using var a = router.Logits(x);
        using var b = loaded.Logits(x);
        Assert.True(BitEqual(a, b));
    }

    [Fact]
    public void Mlp_classifier_learns_xor_which_logistic_regression_cannot()
    {
        using var x = torch.tensor(new float[] { 0, 0, 1, 1, 0, 1, 1, 0 }, [4, 2]) * 2 - 1;
        long[] y = [0, 0, 1, 1];
        using var mlp = ClassifierRouter.Train(x, y, ["same", "different"], new ClassifierRouterOptions { HiddenSize = 16, Steps = 400, LearningRate = 0.1, Seed = 1 });
        Assert.Equal([0, 0, 1, 1], mlp.Top1(x));
        using var linear = ClassifierRouter.Train(x, y, ["same", "different"], new ClassifierRouterOptions { Steps = 300 });
        Assert.NotEqual([0, 0, 1, 1], linear.Top1(x));

        string path = Path.Combine(_dir, "mlp.json");
        mlp.Save(path);
        using var loaded = (ClassifierRouter)AdapterRouting.Load(path);
        Assert.Equal(16, loaded.HiddenSize);
        using var a = mlp.Logits(x);
        using var b = loaded.Logits(x);
        Assert.True(BitEqual(a, b));
    }

    [Fact]
    public void Bad_router_input_is_named()
    {
        using var x = torch.zeros(3, 2);
        Assert.Contains("Label 5", Assert.Throws<ArgumentException>(() => ClassifierRouter.Train(x, [0, 1, 5], ["a", "b"])).Message);
        Assert.Contains("TopK = 3", Assert.Throws<ArgumentException>(() => ClassifierRouter.Train(x, [0, 1, 1], ["a", "b"], new ClassifierRouterOptions { TopK = 3 })).Message);
        using var c = torch.ones(2, 2);
        Assert.Contains("distinct", Assert.Throws<ArgumentException>(() => ClassifierRouter.Train(x, [0, 1, 1], ["a", "a"])).Message);
        using var router = new CentroidRouter(c, ["a", "b"]);
        Assert.Contains("(B, 2)", Assert.Throws<ArgumentException>(() => router.Logits(torch.zeros(1, 3))).Message);
        Assert.Equal(["TopK", "Temperature"], new CentroidRouterOptions { TopK = 0, Temperature = 0 }.GetValidationErrors().Select(e => e.Field));
        string bad = Path.Combine(_dir, "bad.json");
        Directory.CreateDirectory(_dir);
        File.WriteAllText(bad, "{\"format\":\"something\"}");
        Assert.Throws<InvalidDataException>(() => AdapterRouting.Load(bad));
    }
}
