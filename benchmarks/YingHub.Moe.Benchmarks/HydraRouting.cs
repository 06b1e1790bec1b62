using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Training.Adapters.Hydra;
using static TorchSharp.torch;

namespace YingHub.Moe.Benchmarks;

/// <summary>
/// Hydra's domain discovery and routing on a real three-domain corpus (Tiny Shakespeare, the licence texts of
/// <c>/usr/share/common-licenses</c>, this repository's C# sources): for TF-IDF and for mean-pooled hidden states of a
/// small MoE model (char tokens, trained <c>--steps</c> steps on the mixed training documents; 0: untrained), k-means
/// with k = 3, its inertia, silhouette and purity, and the held-out routing accuracy of the centroid router and of a
/// logistic-regression router trained on the cluster labels; the hidden states are scored twice, as they are and centred
/// on the training mean and L2-normalised. Prints one JSON line per embedder and a Markdown summary.
/// <code>
/// dotnet run -c Release --project benchmarks/YingHub.Moe.Benchmarks -- hydra [--data tinyshakespeare.txt] [--src src] [--licenses /usr/share/common-licenses] [--chunk 600] [--per-domain 200] [--steps 200]
/// </code>
/// </summary>
internal static class HydraRouting
{
    public static int Run(string[] args)
    {
        var a = new BenchmarkArguments(args);
        string source = a.Get("--src", FindSrc());
        int chunk = a.Int("--chunk", 600), perDomain = a.Int("--per-domain", 200), steps = a.Int("--steps", 200);
        var corpus = DomainCorpus.BuildDefault(a.Corpus(), source, a.Get("--licenses", "/usr/share/common-licenses"), chunk, perDomain,
            new DomainCorpusOptions { Seed = 0, HeldOutFraction = 0.2 });
        string[] train = corpus.Train.Select(d => d.Text).ToArray(), heldOut = corpus.HeldOut.Select(d => d.Text).ToArray();
        Console.WriteLine($"corpus: {train.Length} train, {heldOut.Length} held out; per domain " +
            string.Join(", ", corpus.Domains.Select(d => $"{d} {corpus.Train.Count(x => x.Domain == d)}+{corpus.HeldOut.Count(x => x.Domain == d)}")));

        var watch = Stopwatch.StartNew();
        var tfidf = TfIdfEmbedder.Fit(train, new TfIdfOptions());
        Report("tfidf", tfidf, corpus, watch, extra: $"vocabulary {tfidf.Dimension}");

        torch.manual_seed(0);
        var tokenizer = CharTokenizer.FromCorpus(string.Concat(train.Concat(heldOut)));
        using var model = SmallModel(tokenizer.VocabSize);
        watch.Restart();
        string trained;
        try
        {
            double loss = Train(model, tokenizer, train, steps);
            trained = steps > 0 ? $"trained {steps} steps, last loss {loss:F3}" : "untrained (random init)";
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            trained = $"untrained (training failed: {e.Message})";
        }

        Console.WriteLine($"model: {trained} in {watch.Elapsed.TotalSeconds:F0} s");
        watch.Restart();
        var hidden = new HiddenStateEmbedder(model, tokenizer, new HiddenStateEmbedderOptions { BatchSize = 16 });
        using var hiddenTrain = hidden.Embed(train);                                               // (N, C)
        using var hiddenHeld = hidden.Embed(heldOut);                                              // (M, C)
        double seconds = watch.Elapsed.TotalSeconds;
        Score("hidden", hiddenTrain, hiddenHeld, corpus, seconds, trained);
        // the same states centred on the training mean and L2-normalised (k-means then works on directions)
        using var mean = hiddenTrain.mean([0], keepdim: true);                                     // (1, C)
        using var centredTrain = nn.functional.normalize(hiddenTrain - mean, dim: 1);
        using var centredHeld = nn.functional.normalize(hiddenHeld - mean, dim: 1);
        Score("hidden-centred", centredTrain, centredHeld, corpus, seconds, trained + "; centred on the train mean, L2-normalised");
        return 0;
    }

    private static void Report(string name, IDocumentEmbedder embedder, DomainCorpus corpus, Stopwatch watch, string extra)
    {
        using var trainEmbeddings = embedder.Embed(corpus.Train.Select(d => d.Text).ToArray());       // (N, D)
        using var heldEmbeddings = embedder.Embed(corpus.HeldOut.Select(d => d.Text).ToArray());      // (M, D)
        Score(name, trainEmbeddings, heldEmbeddings, corpus, watch.Elapsed.TotalSeconds, extra);
    }

    private static void Score(string name, Tensor trainEmbeddings, Tensor heldEmbeddings, DomainCorpus corpus, double embedSeconds, string extra)
    {
        using var kmeans = KMeans.Fit(trainEmbeddings, new KMeansOptions { Clusters = 3, Restarts = 4, Seed = 0 });
        string?[] trainDomains = corpus.Train.Select(d => d.Domain).ToArray();
        string?[] heldDomains = corpus.HeldOut.Select(d => d.Domain).ToArray();
        string?[] clusterDomains = RoutingEvaluation.MajorityDomains(kmeans.Labels, trainDomains, 3);
        double purity = RoutingEvaluation.Purity(kmeans.Labels, trainDomains, 3);
        string[] names = Enumerable.Range(0, 3).Select(c => $"cluster-{c}").ToArray();
        using var centroid = new CentroidRouter(kmeans.Centroids, names);
        var centroidScore = RoutingEvaluation.Evaluate(centroid, heldEmbeddings, clusterDomains, heldDomains);
        using var classifier = ClassifierRouter.Train(trainEmbeddings, kmeans.Labels, names, new ClassifierRouterOptions { Steps = 300, LearningRate = 0.05 });
        var classifierScore = RoutingEvaluation.Evaluate(classifier, heldEmbeddings, clusterDomains, heldDomains);
        Console.WriteLine(JsonSerializer.Serialize(new
        {
            embedder = name, detail = extra, dimension = trainEmbeddings.size(1), train = corpus.Train.Count, held_out = corpus.HeldOut.Count,
            embed_seconds = Math.Round(embedSeconds, 1),
            inertia = kmeans.Inertia, restart_inertias = kmeans.RestartInertias, iterations = kmeans.Iterations,
            silhouette = kmeans.Silhouette, silhouette_points = kmeans.SilhouettePoints, purity, cluster_sizes = kmeans.ClusterSizes(),
            cluster_domains = clusterDomains,
            centroid_accuracy = centroidScore.Accuracy, classifier_accuracy = classifierScore.Accuracy, classifier_loss = classifier.FinalLoss,
        }));
        Console.WriteLine($"centroid router ({name}):\n{centroidScore.ToMarkdown()}\nclassifier router ({name}):\n{classifierScore.ToMarkdown()}");
    }

    /// <summary>A small MoE (2 layers, width 64, 4 experts, top-2, context 64) over <paramref name="vocab"/> char ids.</summary>
    private static MoeForCausalLM SmallModel(int vocab) => new(new MoeModelOptions
    {
        VocabSize = vocab, ContextLength = 64, HiddenSize = 64, NumHeads = 4, NumLayers = 2, NumExperts = 4, TopK = 2, ExpertMultiplier = 2,
        Positions = PositionEncoding.Learned,
    });

    /// <summary>AdamW (lr 3e-3) on random 64-token windows of the concatenated training documents, batch 16; the last loss.</summary>
    private static double Train(MoeForCausalLM model, CharTokenizer tokenizer, string[] documents, int steps)
    {
        if (steps == 0) return double.NaN;
        long[] ids = tokenizer.Encode(string.Join("\n", documents)).Select(i => (long)i).ToArray();
        const int Block = 64, Batch = 16;
        using var data = torch.tensor(ids);
        using var optimizer = torch.optim.AdamW(model.parameters(), 3e-3);
        using var generator = new Generator(1);
        model.train();
        double last = double.NaN;
        for (int step = 0; step < steps; step++)
        {
            using var scope = torch.NewDisposeScope();
            var starts = torch.randint(0, ids.Length - Block - 1, [Batch, 1], generator: generator);    // (B, 1)
            var index = starts + torch.arange(Block + 1).unsqueeze(0);                                     // (B, T + 1)
            var window = data.index_select(0, index.reshape(-1)).reshape(Batch, Block + 1);                // (B, T + 1)
            optimizer.zero_grad();
            var output = model.call(new CausalLMInput(window[.., ..Block].contiguous(), window[.., 1..].contiguous(), RouterStatistics: false));
            output.Loss!.backward();
            optimizer.step();
            if (step % 50 == 0 || step == steps - 1)
            {
                last = output.LmLoss!.item<float>();
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"step {step}: lm loss {last:F3}"));
            }
        }

        model.eval();
        return last;
    }

    private static string FindSrc()
    {
        for (var d = new DirectoryInfo(Environment.CurrentDirectory); d is not null; d = d.Parent)
        {
            if (File.Exists(Path.Combine(d.FullName, "YingHub.Moe.sln"))) return Path.Combine(d.FullName, "src");
        }

        throw new DirectoryNotFoundException("The repository's src/ was not found: pass --src DIR.");
    }
}
