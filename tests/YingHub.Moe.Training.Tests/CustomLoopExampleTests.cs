using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Training.Checkpointing;
using YingHub.Moe.Training.Data;
using YingHub.Moe.Training.Evaluation;
using YingHub.Moe.Training.Freezing;
using YingHub.Moe.Training.Optimization;
using YingHub.Moe.Training.Schedules;
using YingHub.Moe.Training.Tracking;

namespace YingHub.Moe.Training.Tests;

/// <summary>The custom loop of docs/training.md ("A loop of your own"), compiled and run: keep the two in step.</summary>
public sealed class CustomLoopExampleTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("yinghub-loop-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // ---- begin docs/training.md example ----
    static LossEvaluation TrainMyWay(MoeModelOptions options, TokenCorpus corpus, string runDirectory, int steps, List<string> log)
    {
        using var model = new MoeForCausalLM(options);
        ParameterFreezing.Freeze(model, ["embeddings"]); // optional: no gradient, no optimizer state for these
        var (train, validation) = BlockSampler.Split(corpus, blockSize: options.ContextLength, seed: 1);
        using var optimizer = new OptimizerStep(model, new OptimizerStepOptions
        {
            AdamW = new AdamWGroupOptions { LearningRate = 3e-3, WeightDecay = 0.1 },
            Schedule = new WarmupCosineSchedule(new WarmupCosineOptions { PeakLearningRate = 3e-3, MinLearningRate = 3e-4, WarmupSteps = 2, TotalSteps = steps }),
            GradientAccumulation = 2, GradientClip = 1.0, TotalSteps = steps,
        });
        var store = new CheckpointStore(Path.Combine(runDirectory, "checkpoint"), keep: 2);

        long step = 0;
        if (Directory.Exists(store.Directory))
        {
            var state = CheckpointStore.Load(CheckpointStore.FindNewestComplete(store.Directory), model, optimizer); // weights, AdamW, RNG
            train.Skip(state.TrainBlocks);
            step = state.Step;
        }
        else
        {
            torch.manual_seed(1337);
        }

        model.train();
        for (; step < steps; step++)
        {
            using var scope = torch.NewDisposeScope(); // everything of the step is freed here
            CausalLMOutput? output = null;
            var result = optimizer.Step(step, micro =>
            {
                var (x, y) = train.Next(4, model.Device);                                      // (B, T), (B, T)
                output = model.call(new CausalLMInput(x, y, RouterStatistics: micro == 1));
                return output.Loss!;                                                            // a PPO loop returns its own loss here
            });
            var metrics = StepMetrics.Collect(output!, result.Norms, optimizer.NormLabels);     // loss, aux losses, norms, loads, drops
            log.Add($"step {step + 1}: loss {metrics[MetricNames.TrainLoss]:F3}, lr {result.LearningRate:G3}, grad norm {metrics[MetricNames.GradNormGlobal]:F2}");
        }

        store.Save(model, optimizer, new TrainingState { Step = step, TrainBlocks = train.Drawn });
        return LossEvaluator.Evaluate(model, validation, batches: 4, batchSize: 4);
    }
    // ---- end docs/training.md example ----

    [Fact]
    public void Docs_training_md_shows_this_example_verbatim()
    {
        string root = RepositoryRoot();
        string source = File.ReadAllText(Path.Combine(root, "tests", "YingHub.Moe.Training.Tests", "CustomLoopExampleTests.cs"));
        int begin = source.IndexOf("// ---- begin docs/training.md example ----", StringComparison.Ordinal);
        begin = source.IndexOf('\n', begin) + 1;
        int end = source.IndexOf("    // ---- end docs/training.md example ----", begin, StringComparison.Ordinal);
        string example = string.Join('\n', source[begin..end].TrimEnd().Split('\n').Select(l => l.StartsWith("    ", StringComparison.Ordinal) ? l[4..] : l));
        string docs = File.ReadAllText(Path.Combine(root, "docs", "training.md")).Replace("\r\n", "\n", StringComparison.Ordinal);
        Assert.Contains(example.Replace("\r", "", StringComparison.Ordinal), docs);
    }

    /// <summary>
    /// The clone this test was built from, found from the test's output directory (CallerFilePath would not do: CI
    /// builds are deterministic and map source paths to "/_/").
    /// </summary>
    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "YingHub.Moe.sln"))) return dir.FullName;
        }

        throw new DirectoryNotFoundException($"No YingHub.Moe.sln above '{AppContext.BaseDirectory}'.");
    }

    [Fact]
    public void The_documented_loop_trains_saves_and_resumes()
    {
        string text = string.Concat(Enumerable.Repeat("a loop of your own. ", 200));
        string path = Path.Combine(_dir, "text.txt");
        File.WriteAllText(path, text);
        var tokenizer = CharTokenizer.FromCorpus(text);
        using var corpus = TokenCorpus.Open(path, tokenizer);
        var options = new MoeModelOptions
        {
            VocabSize = tokenizer.VocabSize, ContextLength = 16, HiddenSize = 32, NumHeads = 2, NumLayers = 2, NumExperts = 4, TopK = 2, ExpertMultiplier = 2,
        };
        torch.manual_seed(4);
        var log = new List<string>();
        var first = TrainMyWay(options, corpus, _dir, steps: 3, log);
        Assert.Equal(3, CheckpointStore.ReadState(Path.Combine(_dir, "checkpoint")).Step);
        torch.manual_seed(4); // the same initial weights: the resume replaces them anyway
        var second = TrainMyWay(options, corpus, _dir, steps: 12, log); // resumes at step 3
        Assert.Equal(12, log.Count);
        Assert.StartsWith("step 4:", log[3]);
        Assert.Equal(12, CheckpointStore.ReadState(Path.Combine(_dir, "checkpoint")).Step);
        Assert.True(double.IsFinite(first.Loss) && second.Loss < first.Loss, $"validation loss {first.Loss} after 3 steps, {second.Loss} after 12");
    }
}
