using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Training.Data;

namespace YingHub.Moe.Training.Tests;

public sealed class TrainerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("yinghub-trainer-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private (TokenCorpus Corpus, CharTokenizer Tokenizer) Corpus()
    {
        // a learnable text: a fixed cycle of 13 characters, so the next character is determined by the previous one
        string text = string.Concat(Enumerable.Repeat("the cat sat. ", 400));
        string path = Path.Combine(_dir, "cycle.txt");
        File.WriteAllText(path, text);
        var tokenizer = CharTokenizer.FromCorpus(text);
        return (TokenCorpus.Open(path, tokenizer), tokenizer);
    }

    private static MoeForCausalLM Model(int vocab, Action<MoeModelOptions>? change = null)
    {
        torch.manual_seed(3);
        var options = new MoeModelOptions
        {
            VocabSize = vocab, ContextLength = 16, HiddenSize = 32, NumHeads = 2, NumLayers = 2, NumExperts = 4, TopK = 2,
            ExpertMultiplier = 2, Router = RouterKind.NoisyTopK, LoadBalancingCoef = 0.01, ZLossCoef = 0.001,
        };
        change?.Invoke(options);
        return new MoeForCausalLM(options);
    }

    [Fact]
    public void The_trainer_follows_its_schedule_by_default_warmup_then_cosine_or_a_given_one()
    {
        var (corpus, tokenizer) = Corpus();
        using var _ = corpus;
        var (train, _) = BlockSampler.Split(corpus, blockSize: 16, seed: 1);
        using var model = Model(tokenizer.VocabSize);
        var options = new TrainerOptions { Steps = 6, BatchSize = 2, LearningRate = 1e-3, MinLearningRate = 1e-4, WarmupSteps = 2, LogInterval = 1, EvalInterval = 6, EvalBatches = 1 };
        var reported = new List<double>();
        using (var trainer = new Trainer(model, train, null, options))
        {
            trainer.Progress += p => reported.Add(p.LearningRate);
            trainer.Run();
        }

        // warmup 1e-3 · (k + 1) / 2 for k = 0, 1; then cosine from the peak to 1e-4 at k = 6 (0-based schedule steps)
        double[] expected = [5e-4, 1e-3, .. Enumerable.Range(2, 4).Select(k => 1e-4 + 0.9e-3 * 0.5 * (1 + Math.Cos(Math.PI * (k - 2) / 4.0)))];
        Assert.Equal(expected, reported, new Comparison(1e-12));

        reported.Clear();
        options.Schedule = new YingHub.Moe.Training.Schedules.ConstantSchedule(3e-4);
        using (var trainer = new Trainer(model, train, null, options))
        {
            trainer.Progress += p => reported.Add(p.LearningRate);
            trainer.Run();
        }

        Assert.All(reported, lr => Assert.Equal(3e-4, lr, 12));
    }

    private sealed class Comparison(double tolerance) : IEqualityComparer<double>
    {
        public bool Equals(double a, double b) => Math.Abs(a - b) <= tolerance;

        public int GetHashCode(double value) => 0;
    }

    [Fact]
    public void Training_learns_a_predictable_text_and_reports_its_progress()
    {
        var (corpus, tokenizer) = Corpus();
        using var _ = corpus;
        var (train, validation) = BlockSampler.Split(corpus, blockSize: 16, seed: 1);
        using var model = Model(tokenizer.VocabSize);
        using var trainer = new Trainer(model, train, validation, new TrainerOptions
        {
            Steps = 80, BatchSize = 8, LearningRate = 3e-3, MinLearningRate = 3e-4, WarmupSteps = 8, EvalInterval = 40, EvalBatches = 4, LogInterval = 10,
        });
        var progress = new List<TrainingProgress>();
        trainer.Progress += progress.Add;
        double before = trainer.EvaluateLoss(validation);
        var result = trainer.Run();

        Assert.Equal(80, result.Steps);
        Assert.False(result.Cancelled);
        Assert.True(before > 1.5, $"an untrained model should be near ln(9) = 2.2, got {before}");
        Assert.True(result.ValidationLoss < 0.3, $"a 13-character cycle should be learned, validation loss {result.ValidationLoss}");
        Assert.Equal([10, 20, 30, 40, 50, 60, 70, 80], progress.Select(p => p.Step));
        Assert.Equal(2, progress.Count(p => p.ValidationLoss is not null)); // evaluations at 40 and 80
        Assert.True(result.TokensPerSecond > 0);
    }

    [Fact]
    public void Cancellation_stops_at_a_step_boundary()
    {
        var (corpus, tokenizer) = Corpus();
        using var _ = corpus;
        var (train, _) = BlockSampler.Split(corpus, blockSize: 16, seed: 1);
        using var model = Model(tokenizer.VocabSize);
        using var cts = new CancellationTokenSource();
        using var trainer = new Trainer(model, train, null, new TrainerOptions { Steps = 1000, BatchSize = 2, WarmupSteps = 0, LogInterval = 5, EvalInterval = 1000, EvalBatches = 1 });
        trainer.Progress += p => { if (p.Step == 10) cts.Cancel(); };
        var result = trainer.Run(cts.Token);
        Assert.True(result.Cancelled);
        Assert.Equal(10, result.Steps);
        Assert.Null(result.ValidationLoss);
    }

    [Fact]
    public void Training_n_steps_saving_and_resuming_n_more_equals_training_2n_straight()
    {
        var (corpus, tokenizer) = Corpus();
        using var _ = corpus;
        TrainerOptions Options(string? dir) => new()
        {
            Steps = 20, BatchSize = 4, LearningRate = 3e-3, WarmupSteps = 4, EvalInterval = 20, EvalBatches = 2, LogInterval = 5, CheckpointDirectory = dir,
            ModuleGradientClip = new YingHub.Moe.Training.Optimization.GradientClipOptions(), RouterLearningRateMultiplier = 2, // YingHub-v2's clipping
        };
        float[] Weights(MoeForCausalLM m) => m.named_parameters().Single(p => p.name == "layers.1.block_sparse_moe.experts.fc1.weight").parameter.data<float>().ToArray();

        float[] straight;
        double straightLoss;
        using (var model = Model(tokenizer.VocabSize))
        {
            var (train, validation) = BlockSampler.Split(corpus, 16, seed: 9);
            using var trainer = new Trainer(model, train, validation, Options(null));
            straightLoss = trainer.Run().TrainLoss;
            straight = Weights(model);
        }

        string dir = Path.Combine(_dir, "ckpt");
        using (var model = Model(tokenizer.VocabSize))
        {
            var (train, validation) = BlockSampler.Split(corpus, 16, seed: 9);
            using var cts = new CancellationTokenSource();
            using var trainer = new Trainer(model, train, validation, Options(dir));
            trainer.Progress += p => { if (p.Step == 10) cts.Cancel(); };
            Assert.Equal(10, trainer.Run(cts.Token).Steps);
        }

        using (var model = Model(tokenizer.VocabSize))
        {
            var (train, validation) = BlockSampler.Split(corpus, 16, seed: 9);
            using var trainer = new Trainer(model, train, validation, Options(null));
            trainer.Resume(dir);
            Assert.Equal(10, trainer.Step);
            var result = trainer.Run();
            Assert.Equal(20, result.Steps);
            Assert.Equal(straight, Weights(model));
            Assert.Equal(straightLoss, result.TrainLoss);
        }

        // a model built with other options than the run's (here only the dropout, which no weight shape shows) is refused
        // before anything loads, naming the option; another initialisation is no difference for a resumed run
        using (var model = Model(tokenizer.VocabSize, o => { o.Dropout = 0.25; o.Init = InitScheme.Xavier; o.ResidualInit = ResidualInitScheme.Zero; }))
        {
            var (train, _) = BlockSampler.Split(corpus, 16, seed: 9);
            using var trainer = new Trainer(model, train, null, Options(null));
            var before = Weights(model);
            var ex = Assert.Throws<ArgumentException>(() => trainer.Resume(dir));
            Assert.Contains("hidden_dropout 0 in the checkpoint, 0.25 in this model", ex.Message);
            Assert.DoesNotContain("init_scheme", ex.Message);
            Assert.DoesNotContain("residual_init", ex.Message);
            Assert.Equal(before, Weights(model));
            Assert.Equal(0, trainer.Step);
        }

        // a corrupted file is detected before anything is loaded
        byte[] weights = File.ReadAllBytes(Path.Combine(dir, "model.safetensors"));
        weights[^1] ^= 0xff;
        File.WriteAllBytes(Path.Combine(dir, "model.safetensors"), weights);
        using (var model = Model(tokenizer.VocabSize))
        {
            var (train, _) = BlockSampler.Split(corpus, 16, seed: 9);
            using var trainer = new Trainer(model, train, null, Options(null));
            var ex = Assert.Throws<InvalidDataException>(() => trainer.Resume(dir));
            Assert.Contains("'model.safetensors' does not match its recorded SHA-256", ex.Message);
        }

        // a checkpoint of an earlier version ((out, in) projection weights, no layout key) is refused before anything loads
        string weightsPath = Path.Combine(dir, "model.safetensors");
        using (var scope = torch.NewDisposeScope())
        {
            var tensors = YingHub.Moe.Core.Checkpoints.Safetensors.Read(weightsPath);
            YingHub.Moe.Core.Checkpoints.Safetensors.Write(weightsPath, tensors, new Dictionary<string, string> { ["format"] = "pt", ["library"] = "YingHub.Moe" });
        }

        string sumsPath = Path.Combine(dir, "checksums.sha256");
        string sum = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(weightsPath)));
        File.WriteAllLines(sumsPath, File.ReadAllLines(sumsPath).Select(l => l.EndsWith("  model.safetensors", StringComparison.Ordinal) ? $"{sum}  model.safetensors" : l));
        using (var model = Model(tokenizer.VocabSize))
        {
            var (train, _) = BlockSampler.Split(corpus, 16, seed: 9);
            using var trainer = new Trainer(model, train, null, Options(null));
            var before = Weights(model);
            var ex = Assert.Throws<InvalidDataException>(() => trainer.Resume(dir));
            Assert.Contains("earlier version", ex.Message);
            Assert.Equal(before, Weights(model));
            Assert.Equal(0, trainer.Step);
        }
    }

    [Theory]
    [InlineData(0.8, 0.9, 4)] // utilization 0.75 below Low: more experts per token
    [InlineData(0.5, 0.7, 2)] // above High: fewer
    [InlineData(0.7, 0.8, 3)] // inside the band: k stays
    public void Adaptive_top_k_follows_the_measured_utilization(double low, double high, int expectedK)
    {
        var (corpus, tokenizer) = Corpus();
        using var _ = corpus;
        var (train, _) = BlockSampler.Split(corpus, blockSize: 16, seed: 1);
        using var model = Model(tokenizer.VocabSize, o => { o.Router = RouterKind.TopK; o.TopK = 3; });
        // a zero gate gives every expert the same logit, so every token picks the same 3 of the 4 experts: by hand, the
        // utilization (experts at or above half a fair share) is 3 / 4 at the first step
        using (torch.no_grad())
        {
            foreach (var (name, p) in model.named_parameters().Where(p => p.name.Contains("block_sparse_moe.gate"))) p.zero_();
        }

        using var trainer = new Trainer(model, train, null, new TrainerOptions
        {
            Steps = 1, BatchSize = 2, WarmupSteps = 0, LogInterval = 1, EvalInterval = 1, EvalBatches = 1, PeakFlopsPerSecond = 1e11,
            AdaptiveTopK = new YingHub.Moe.Training.Routing.TopKControllerOptions { Low = low, High = high, MinK = 2, MaxK = 4, Cooldown = 100 },
        });
        var points = new List<TrainingProgress>();
        trainer.Progress += points.Add;
        trainer.Run();
        Assert.Equal(0.75, Assert.Single(points).Metrics!["utilization"], 6);
        Assert.Equal(expectedK, model.TopK);
    }

    [Fact]
    public void Capacity_drops_are_logged_per_layer_and_as_a_mean()
    {
        var (corpus, tokenizer) = Corpus();
        using var _ = corpus;
        var (train, _) = BlockSampler.Split(corpus, blockSize: 16, seed: 1);
        using var model = Model(tokenizer.VocabSize, o => { o.Router = RouterKind.TopK; o.TopK = 3; o.CapacityFactor = 1.0; });
        using (torch.no_grad())
        {
            foreach (var (name, p) in model.named_parameters().Where(p => p.name.Contains("block_sparse_moe.gate"))) p.zero_();
        }

        using var trainer = new Trainer(model, train, null, new TrainerOptions
        {
            Steps = 1, BatchSize = 2, WarmupSteps = 0, LogInterval = 1, EvalInterval = 1, EvalBatches = 1, PeakFlopsPerSecond = 1e11,
        });
        var points = new List<TrainingProgress>();
        trainer.Progress += points.Add;
        trainer.Run();
        // by hand: a zero gate sends all N = 2 x 16 tokens to the same 3 experts; capacity ceil(1.0 x 32 x 3 / 4) = 24 per
        // expert, so each of the 3 drops 8 of its 32: 24 of 96 assignments, a quarter, in both layers
        var m = Assert.Single(points).Metrics!;
        Assert.Equal(0.25, m["dropped/0"], 9);
        Assert.Equal(0.25, m["dropped/1"], 9);
        Assert.Equal(0.25, m["dropped/mean"], 9);
    }

    [Fact]
    public void Adaptive_top_k_is_refused_beyond_the_experts_and_down_to_1_with_renormalised_weights()
    {
        var (corpus, tokenizer) = Corpus();
        using var _ = corpus;
        var (train, _) = BlockSampler.Split(corpus, blockSize: 16, seed: 1);
        using var model = Model(tokenizer.VocabSize);
        var ex = Assert.Throws<ArgumentException>(() => new Trainer(model, train, null, new TrainerOptions
        {
            Steps = 10, LogInterval = 5, EvalInterval = 10, WarmupSteps = 0, AdaptiveTopK = new YingHub.Moe.Training.Routing.TopKControllerOptions { MaxK = 9 },
        }));
        Assert.Contains("MaxK = 9 exceeds the model's 4 experts", ex.Message);

        // at k = 1 a renormalised gate weight is identically 1: the router would get no gradient from the LM loss
        Assert.True(model.Options.NormalizeTopKWeights);
        ex = Assert.Throws<ArgumentException>(() => new Trainer(model, train, null, new TrainerOptions
        {
            Steps = 10, LogInterval = 5, EvalInterval = 10, WarmupSteps = 0, AdaptiveTopK = new YingHub.Moe.Training.Routing.TopKControllerOptions { MinK = 1, MaxK = 2 },
        }));
        Assert.Contains("AdaptiveTopK.MinK = 1", ex.Message);
        Assert.Contains("NormalizeTopKWeights", ex.Message);

        // the defaults avoid it, and without renormalisation k = 1 is allowed
        Assert.Equal(2, new YingHub.Moe.Training.Routing.TopKControllerOptions().MinK);
        using var plain = Model(tokenizer.VocabSize, o => o.NormalizeTopKWeights = false);
        using var allowed = new Trainer(plain, train, null, new TrainerOptions
        {
            Steps = 10, LogInterval = 5, EvalInterval = 10, WarmupSteps = 0, AdaptiveTopK = new YingHub.Moe.Training.Routing.TopKControllerOptions { MinK = 1, MaxK = 2 },
        });
    }

    [Fact]
    public void Bad_options_and_blocks_longer_than_the_context_are_rejected()
    {
        var (corpus, tokenizer) = Corpus();
        using var _ = corpus;
        using var model = Model(tokenizer.VocabSize);
        var (train, _) = BlockSampler.Split(corpus, blockSize: 32, seed: 1);
        Assert.Contains("context length 16", Assert.Throws<ArgumentException>(() => new Trainer(model, train, null, new TrainerOptions())).Message);
        var (ok, _) = BlockSampler.Split(corpus, blockSize: 16, seed: 1);
        var ex = Assert.Throws<ArgumentException>(() => new Trainer(model, ok, null, new TrainerOptions { Steps = 10, WarmupSteps = -1, LogInterval = 1, EvalInterval = 1 }));
        Assert.Contains("WarmupSteps = -1 is invalid; allowed: [0, 100000000].", ex.Message);
    }
}
