using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Training.Data;
using YingHub.Moe.Training.Optimization;
using YingHub.Moe.Training.Routing;
using YingHub.Moe.Training.Schedules;
using YingHub.Moe.Training.Tracking;

namespace YingHub.Moe.Training.Tests;

/// <summary>Exact resume with every stateful feature on, and gradient accumulation against one big batch.</summary>
public sealed class ExactResumeTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("yinghub-resume-").FullName;
    private readonly TokenCorpus _corpus;
    private readonly CharTokenizer _tokenizer;

    public ExactResumeTests()
    {
        (_corpus, _tokenizer) = TestCorpus.Open(_dir, string.Concat(Enumerable.Repeat("the quick brown fox jumps over the lazy dog. ", 120)));
    }

    public void Dispose()
    {
        _corpus.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private MoeForCausalLM Model(Action<MoeModelOptions> change)
    {
        torch.manual_seed(11);
        var options = new MoeModelOptions
        {
            VocabSize = _tokenizer.VocabSize, ContextLength = 16, HiddenSize = 32, NumHeads = 2, NumLayers = 2, NumExperts = 4, TopK = 4,
            ExpertMultiplier = 2, LoadBalancingCoef = 0.01,
        };
        change(options);
        return new MoeForCausalLM(options);
    }

    private static Dictionary<string, float[]> Snapshot(MoeForCausalLM model) =>
        model.state_dict().Where(kv => kv.Value.is_floating_point()).ToDictionary(kv => kv.Key, kv => kv.Value.data<float>().ToArray());

    private static TrainerOptions AllOn(string? dir) => new()
    {
        Steps = 12, BatchSize = 4, LearningRate = 3e-3, WarmupSteps = 2, LogInterval = 2, EvalInterval = 3, EvalBatches = 2, PeakFlopsPerSecond = 1e11,
        CheckpointDirectory = dir,
        // utilization stays far above High, so k steps down (4 -> 3 at step 2) whenever the cooldown of 6 steps allows
        // (3 -> 2 at step 8): a resume at step 4 that forgot the cooldown would step down at 6 instead
        AdaptiveTopK = new TopKControllerOptions { Low = 0.1, High = 0.3, MinK = 2, MaxK = 4, Cooldown = 6 },
        TokenMasking = new TokenMaskingOptions { MaskTokenId = 0 },
        // only the first evaluation (step 3) improves by 10 nats: evaluations 6 and 9 exhaust the patience; the best weights
        // (step 3's, from before the resume) must come back from the checkpoint
        EarlyStopping = new EarlyStoppingOptions { Patience = 2, MinDelta = 10, RestoreBestWeights = true },
    };

    [Fact]
    public void N_steps_then_resume_equals_2n_steps_bit_for_bit_with_adaptive_top_k_masking_early_stopping_and_dropout()
    {
        static void Noisy(MoeModelOptions o)
        {
            o.Dropout = 0.1;
            o.Router = RouterKind.NoisyTopK;
        }

        Dictionary<string, float[]> straight;
        TrainingResult straightResult;
        var straightK = new List<(long Step, double K)>();
        using (var model = Model(Noisy))
        {
            var (train, validation) = BlockSampler.Split(_corpus, 16, seed: 5);
            using var trainer = new Trainer(model, train, validation, AllOn(null));
            trainer.Progress += p => { if (p.Metrics!.TryGetValue(MetricNames.TopK, out double k)) straightK.Add((p.Step, k)); };
            straightResult = trainer.Run();
            straight = Snapshot(model);
            Assert.Equal(2, model.TopK);
        }

        Assert.True(straightResult.StoppedEarly);
        Assert.Equal(9, straightResult.Steps);
        Assert.Equal(3, straightResult.BestStep);
        Assert.Equal([(2L, 3.0), (4, 3), (6, 3), (8, 2)], straightK);

        string dir = Path.Combine(_dir, "run");
        using (var model = Model(Noisy))
        {
            var (train, validation) = BlockSampler.Split(_corpus, 16, seed: 5);
            using var cancel = new CancellationTokenSource();
            using var trainer = new Trainer(model, train, validation, AllOn(dir));
            trainer.Progress += p => { if (p.Step == 4) cancel.Cancel(); };
            Assert.Equal(4, trainer.Run(cancel.Token).Steps);
        }

        using (var model = Model(Noisy))
        {
            var (train, validation) = BlockSampler.Split(_corpus, 16, seed: 5);
            using var trainer = new Trainer(model, train, validation, AllOn(null));
            trainer.Resume(dir);
            Assert.Equal(4, trainer.Step);
            Assert.Equal(3, model.TopK);
            var result = trainer.Run();
            Assert.Equal(straightResult, result with { TokensPerSecond = straightResult.TokensPerSecond });
            Assert.Equal(2, model.TopK);
            var resumed = Snapshot(model);
            Assert.Equal(straight.Keys.Order(), resumed.Keys.Order());
            foreach (var (name, values) in straight) Assert.True(values.AsSpan().SequenceEqual(resumed[name]), $"{name} differs after the resume");
        }
    }

    [Fact]
    public void Two_micro_batches_of_2_make_the_same_step_as_one_batch_of_4()
    {
        // no dropout, noise or auxiliary losses: the loss is then a plain mean over the same 4 blocks either way
        static void Plain(MoeModelOptions o)
        {
            o.Router = RouterKind.TopK;
            o.TopK = 2;
            o.Dropout = 0;
            o.LoadBalancingCoef = 0;
            o.ZLossCoef = 0;
            o.UtilizationKlCoef = 0;
        }

        (Dictionary<string, float[]> Weights, double Norm) Step(int batch, int accumulation)
        {
            using var model = Model(Plain);
            var (train, _) = BlockSampler.Split(_corpus, 16, seed: 5);
            using var trainer = new Trainer(model, train, null, new TrainerOptions
            {
                Steps = 1, BatchSize = batch, GradientAccumulation = accumulation, Schedule = new ConstantSchedule(1e-3), WarmupSteps = 0,
                GradientClip = null, LogInterval = 1, EvalInterval = 1, EvalBatches = 1, PeakFlopsPerSecond = 1e11,
            });
            double norm = double.NaN;
            trainer.Progress += p => norm = p.Metrics![MetricNames.GradNormGlobal];
            trainer.Run();
            return (Snapshot(model), norm);
        }

        var (one, oneNorm) = Step(batch: 4, accumulation: 1);
        var (two, twoNorm) = Step(batch: 2, accumulation: 2);
        // the gradient itself (AdamW's first step is nearly scale-free, the norm is not): the mean of two half means
        Assert.Equal(oneNorm, twoNorm, 1e-5 * oneNorm);
        foreach (var (name, values) in one)
        {
            for (int i = 0; i < values.Length; i++)
                Assert.True(Math.Abs(values[i] - two[name][i]) < 1e-6, $"{name}[{i}]: {values[i]} with one batch of 4, {two[name][i]} with 2 x 2");
        }
    }
}
