using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Training.Data;
using YingHub.Moe.Training.Optimization;
using YingHub.Moe.Training.Schedules;
using YingHub.Moe.Training.Tracking;

namespace YingHub.Moe.Training.Tests;

/// <summary>Mixed precision, loss scaling, early stopping, masking, the clip schedule, metrics and checkpoint history.</summary>
public sealed class TrainerFeatureTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("yinghub-trainer-features-").FullName;
    private readonly TokenCorpus _corpus;
    private readonly CharTokenizer _tokenizer;

    public TrainerFeatureTests()
    {
        (_corpus, _tokenizer) = TestCorpus.Open(_dir, string.Concat(Enumerable.Repeat("the cat sat on the mat. ", 300)));
    }

    public void Dispose()
    {
        _corpus.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private MoeForCausalLM Model()
    {
        torch.manual_seed(7);
        return new MoeForCausalLM(new MoeModelOptions
        {
            VocabSize = _tokenizer.VocabSize, ContextLength = 16, HiddenSize = 32, NumHeads = 2, NumLayers = 2, NumExperts = 4, TopK = 2,
            ExpertMultiplier = 2, Dropout = 0, LoadBalancingCoef = 0.01,
        });
    }

    private (BlockSampler Train, BlockSampler Validation) Samplers() => BlockSampler.Split(_corpus, blockSize: 16, seed: 1);

    private static TrainerOptions Options(int steps) => new()
    {
        Steps = steps, BatchSize = 4, LearningRate = 3e-3, MinLearningRate = 3e-4, WarmupSteps = 0, LogInterval = 1, EvalInterval = steps, EvalBatches = 2,
        PeakFlopsPerSecond = 1e11,
    };

    private List<TrainingProgress> Run(TrainingPrecision precision, int steps, out TrainingResult result)
    {
        var (train, validation) = Samplers();
        using var model = Model();
        var options = Options(steps);
        options.Precision = precision;
        using var trainer = new Trainer(model, train, validation, options);
        var points = new List<TrainingProgress>();
        trainer.Progress += points.Add;
        result = trainer.Run();
        return points;
    }

    [Fact]
    public void A_bf16_step_has_the_loss_of_fp32_on_the_same_batch_within_a_small_tolerance_and_bf16_training_learns()
    {
        var fp32 = Run(TrainingPrecision.Fp32, 40, out var fp32Result);
        var bf16 = Run(TrainingPrecision.Bf16, 40, out var bf16Result);
        double first32 = fp32[0].Metrics!["train/loss"], first16 = bf16[0].Metrics!["train/loss"];
        Assert.True(Math.Abs(first32 - first16) < 0.03, $"step 1: bf16 {first16} vs fp32 {first32}");
        Assert.NotEqual(first32, first16);
        Assert.True(bf16Result.ValidationLoss < first16 - 1.0, $"bf16 validation loss {bf16Result.ValidationLoss} after 40 steps, from {first16}");
        Assert.True(Math.Abs(fp32Result.ValidationLoss!.Value - bf16Result.ValidationLoss!.Value) < 0.15,
            $"after 40 steps: bf16 {bf16Result.ValidationLoss} vs fp32 {fp32Result.ValidationLoss}");
    }

    [Fact]
    public void Fp16_overflow_skips_the_step_leaves_the_weights_and_halves_the_scale_then_training_proceeds()
    {
        var (train, _) = Samplers();
        using var model = Model();
        var before = model.parameters().Select(p => p.detach().clone()).ToArray();
        var options = Options(1);
        options.Precision = TrainingPrecision.Fp16;
        options.LossScaling = new DynamicLossScalerOptions { InitialScale = 4294967296.0 }; // 2^32: float16 gradients overflow
        using (var trainer = new Trainer(model, train, null, options))
        {
            var result = trainer.Run();
            Assert.Equal(1, result.SkippedSteps);
            Assert.Equal(2147483648.0, trainer.LossScaler!.Scale);
        }

        var after = model.parameters().ToArray();
        for (int i = 0; i < before.Length; i++) Assert.True(before[i].equal(after[i]).all().item<bool>(), $"parameter {i} changed on a skipped step");

        options.Steps = 3;
        options.LossScaling = new DynamicLossScalerOptions { InitialScale = 256 };
        using var second = new Trainer(model, train, null, options);
        Assert.Equal(0, second.Run().SkippedSteps);
        Assert.Contains(model.parameters().Zip(before), pair => !pair.First.equal(pair.Second).all().item<bool>());
    }

    [Fact]
    public void Log_points_report_grad_norms_per_module_aux_losses_expert_loads_throughput_and_the_scheduled_clip()
    {
        var (train, _) = Samplers();
        using var model = Model();
        var options = Options(4);
        options.GradientClipSchedule = YingHubV2Schedules.GlobalClipNorm();
        options.TokenMasking = new TokenMaskingOptions { MaskTokenId = 0 };
        using var trainer = new Trainer(model, train, null, options);
        var points = new List<TrainingProgress>();
        trainer.Progress += points.Add;
        trainer.Run();

        var logs = points.Where(p => p.Metrics!.ContainsKey("grad_norm/global")).ToList();
        Assert.Equal([1L, 2, 3, 4], logs.Select(p => p.Step)); // step 4 is also an evaluation: its step metrics are kept
        foreach (var p in logs)
        {
            var m = p.Metrics!;
            double progress = (p.Step - 1) / 4.0;
            Assert.Equal(progress <= 0.5 ? 1.0 + progress / 0.5 : 2.0 + (progress - 0.5) / 0.5 * 0.5, m["grad_clip"], 12); // 1.0 -> 2.0 -> 2.5
            Assert.Equal(0.20 - 0.15 * (p.Step - 1) / 4.0, m["mask_probability"], 12);
            double router = m["grad_norm/router"], experts = m["grad_norm/experts"], other = m["grad_norm/other"];
            Assert.True(router > 0 && experts > 0 && other > 0);
            Assert.Equal(Math.Sqrt(router * router + experts * experts + other * other), m["grad_norm/global"], 4);
            Assert.True(m["aux/load_balancing"] > 0 && m["tokens_per_s"] > 0 && m["ms_per_step"] > 0 && m["mfu"] > 0);
            Assert.Equal(2, m["top_k"]);
            for (int layer = 0; layer < 2; layer++)
                Assert.Equal(1.0, Enumerable.Range(0, 4).Sum(e => m[$"expert_load/{layer}/{e}"]), 9);
            Assert.Equal(0.0, m["dropped/mean"]); // no capacity limit: nothing dropped
        }

        Assert.True(logs[^1].Metrics!.ContainsKey(MetricNames.ValidationLoss) || logs[^1].Metrics!.ContainsKey(MetricNames.EvalTrainLoss));
    }

    [Fact]
    public void Early_stopping_stops_after_patience_and_restores_the_best_weights()
    {
        var (train, validation) = Samplers();
        using var model = Model();
        var options = Options(100);
        options.EvalInterval = 2;
        options.CheckpointDirectory = Path.Combine(_dir, "run");
        // an improvement must beat the best by 10 nats: only the first evaluation counts as one
        options.EarlyStopping = new EarlyStoppingOptions { Patience = 2, MinDelta = 10, RestoreBestWeights = true };
        using var trainer = new Trainer(model, train, validation, options);
        Dictionary<string, TorchSharp.torch.Tensor>? best = null;
        trainer.Progress += p =>
        {
            if (p.Step == 2 && p.ValidationLoss is not null) best = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());
        };
        var result = trainer.Run();

        Assert.True(result.StoppedEarly);
        Assert.Equal(6, result.Steps);
        Assert.Equal(2, result.BestStep);
        foreach (var (name, value) in model.state_dict()) Assert.True(value.equal(best![name]).all().item<bool>(), $"{name} is not the best step's");
        Assert.True(File.Exists(Path.Combine(options.CheckpointDirectory + ".best", "model.safetensors")));

        // the final checkpoint holds the returned (restored) model, not the last step's weights
        using var saved = YingHub.Moe.Core.Checkpoints.MoeCheckpoint.Load(options.CheckpointDirectory);
        var savedState = saved.state_dict();
        foreach (var (name, value) in model.state_dict()) Assert.True(value.equal(savedState[name]).all().item<bool>(), $"{name} differs between the checkpoint and the returned model");
    }

    [Fact]
    public void Keep_checkpoints_moves_earlier_ones_to_the_history_and_prunes_the_oldest()
    {
        var (train, _) = Samplers();
        using var model = Model();
        var options = Options(8);
        options.CheckpointDirectory = Path.Combine(_dir, "run");
        options.CheckpointInterval = 2;
        options.KeepCheckpoints = 3;
        using (var trainer = new Trainer(model, train, null, options)) trainer.Run();

        var history = Directory.GetDirectories(options.CheckpointDirectory + ".history").Select(d => Path.GetFileName(d)!).Order().ToArray();
        Assert.Equal(new[] { "step-00000004", "step-00000006" }, history);
        Assert.Contains("\"Step\": 8", File.ReadAllText(Path.Combine(options.CheckpointDirectory, "trainer_state.json")));
    }

    private sealed class RecordingTracker : ITrainingTracker
    {
        public List<IReadOnlyDictionary<string, string>> Parameters { get; } = [];
        public List<(long Step, IReadOnlyDictionary<string, double> Metrics)> Metrics { get; } = [];
        public List<TrainingRunStatus> Completions { get; } = [];

        public void LogParameters(IReadOnlyDictionary<string, string> parameters) => Parameters.Add(parameters);
        public void LogMetrics(long step, IReadOnlyDictionary<string, double> metrics) => Metrics.Add((step, metrics));
        public void SetTags(IReadOnlyDictionary<string, string> tags) { }
        public void LogArtifact(string path) { }
        public void Complete(TrainingRunStatus status) => Completions.Add(status);
        public void Dispose() { }
    }

    [Fact]
    public void A_tracker_gets_the_hyperparameters_once_every_log_and_evaluation_point_and_the_end_status()
    {
        var (train, validation) = Samplers();
        using var model = Model();
        var options = Options(6);
        options.LogInterval = 2;
        options.EvalInterval = 3;
        var tracker = new RecordingTracker();
        using (var trainer = new Trainer(model, train, validation, options) { Tracker = tracker }) trainer.Run();

        var parameters = Assert.Single(tracker.Parameters);
        Assert.Equal("6", parameters["trainer.Steps"]);
        Assert.Equal("Fp32", parameters["trainer.Precision"]);
        Assert.Equal("32", parameters["model.hidden_size"]);
        Assert.Equal(model.ActiveParameterCount.ToString(System.Globalization.CultureInfo.InvariantCulture), parameters["model.params_active"]);
        Assert.Equal([2L, 3, 4, 6], tracker.Metrics.Select(m => m.Step)); // log points 2 and 4; evaluations 3 and 6
        Assert.Contains(MetricNames.ExpertLoad(1, 3), tracker.Metrics[0].Metrics.Keys);
        Assert.Contains(MetricNames.ValidationLoss, tracker.Metrics[1].Metrics.Keys);
        Assert.Equal([TrainingRunStatus.Finished], tracker.Completions);

        using var cancel = new CancellationTokenSource();
        cancel.Cancel();
        var cancelled = new RecordingTracker();
        using (var trainer = new Trainer(model, train, validation, Options(6)) { Tracker = cancelled }) trainer.Run(cancel.Token);
        Assert.Equal([TrainingRunStatus.Killed], cancelled.Completions);
    }

    [Fact]
    public void New_options_are_validated_and_a_mask_token_outside_the_vocabulary_or_early_stopping_without_validation_is_refused()
    {
        var (train, _) = Samplers();
        using var model = Model();
        var bad = Options(4);
        bad.KeepCheckpoints = 0;
        bad.PeakFlopsPerSecond = -1;
        var ex = Assert.Throws<ArgumentException>(() => new Trainer(model, train, null, bad));
        Assert.Contains("KeepCheckpoints = 0", ex.Message);
        Assert.Contains("PeakFlopsPerSecond = -1", ex.Message);

        var mask = Options(4);
        mask.TokenMasking = new TokenMaskingOptions { MaskTokenId = _tokenizer.VocabSize };
        ex = Assert.Throws<ArgumentException>(() => new Trainer(model, train, null, mask));
        Assert.Contains($"MaskTokenId = {_tokenizer.VocabSize}", ex.Message);

        var early = Options(4);
        early.EarlyStopping = new EarlyStoppingOptions();
        ex = Assert.Throws<ArgumentException>(() => new Trainer(model, train, null, early));
        Assert.Contains("validation", ex.Message);
    }
}
