using System.Diagnostics;
using System.Text.Json;
using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Training.Adapters;
using YingHub.Moe.Training.Optimization;
using YingHub.Moe.Training.Schedules;
using static TorchSharp.torch;

namespace YingHub.Moe.Benchmarks;

/// <summary>
/// A small Hydra-β measurement: Tiny Shakespeare (char tokens) cut into two halves as two "domains" (each: first 90%
/// train, last 10% validation). A small MoE base is trained on half A only; then, on the frozen base, (1) a gated
/// mixture of LoRA experts trained on both halves, and (2) one LoRA adapter per half, each trained on its half (the
/// routed-single-adapter baseline with a perfect router). Prints the validation loss per half for each, one JSON line.
/// <code>
/// dotnet run -c Release --project benchmarks/YingHub.Moe.Benchmarks -- mixture [--base-steps 600] [--steps 200] [--experts 3] [--top-k 2] [--rank 8] [--data FILE]
/// </code>
/// </summary>
internal static class HydraMixture
{
    public static int Run(string[] args)
    {
        var a = new BenchmarkArguments(args);
        int baseSteps = a.Int("--base-steps", 600), steps = a.Int("--steps", 200), experts = a.Int("--experts", 3), topK = a.Int("--top-k", 2), rank = a.Int("--rank", 8);
        int batch = a.Int("--batch", 16), block = a.Int("--block", 64), evalBatches = a.Int("--eval-batches", 50), seed = a.Int("--seed", 1337);
        double lr = a.Double("--lr", 3e-3), adapterLr = a.Double("--adapter-lr", 3e-3), coef = a.Double("--aux", 0.01);
        string text = File.ReadAllText(a.Corpus());
        var tokenizer = CharTokenizer.FromCorpus(text);
        var ids = tokenizer.Encode(text).Select(i => (long)i).ToArray();
        var halves = new[] { ids[..(ids.Length / 2)], ids[(ids.Length / 2)..] };
        var (trainA, valA) = Split(halves[0]);
        var (trainB, valB) = Split(halves[1]);

        torch.manual_seed(seed);
        using var model = new MoeForCausalLM(new MoeModelOptions
        {
            VocabSize = tokenizer.VocabSize, ContextLength = block, HiddenSize = 64, NumHeads = 4, NumLayers = 2, NumExperts = 4, TopK = 2,
        });
        var clock = Stopwatch.StartNew();
        using (var optimizer = new OptimizerStep(model, Step(lr)))
            Train(model, optimizer, [trainA], baseSteps, batch, block, seed, extra: null);
        double baseMinutes = clock.Elapsed.TotalMinutes;
        var baseLoss = (A: Evaluate(model, valA, evalBatches, batch, block, seed), B: Evaluate(model, valB, evalBatches, batch, block, seed));

        clock.Restart();
        var lora = new LoraOptions { Rank = rank, Alpha = 2 * rank, TargetModules = ["qkv_proj", "o_proj"] };
        (double A, double B) mixtureLoss;
        using (var mixture = new LoraMixture(model, new LoraMixtureOptions { Lora = lora, NumExperts = experts, TopK = topK, BalanceLossCoefficient = coef }))
        {
            mixture.Activate();
            using (var optimizer = new OptimizerStep(mixture.TrainableParameters(), Step(adapterLr)))
                Train(model, optimizer, [trainA, trainB], steps, batch, block, seed + 1, extra: () => mixture.BalanceLoss() * coef);
            mixtureLoss = (Evaluate(model, valA, evalBatches, batch, block, seed), Evaluate(model, valB, evalBatches, batch, block, seed));
        }

        double mixtureMinutes = clock.Elapsed.TotalMinutes;
        var single = new double[2];
        for (int half = 0; half < 2; half++)
        {
            using var adapter = new LoraAdapter(model, lora, half == 0 ? "half-a" : "half-b");
            adapter.Activate();
            using (var optimizer = new OptimizerStep(adapter.named_parameters(), Step(adapterLr)))
                Train(model, optimizer, [half == 0 ? trainA : trainB], steps, batch, block, seed + 2 + half, extra: null);
            single[half] = Evaluate(model, half == 0 ? valA : valB, evalBatches, batch, block, seed);
        }

        Console.WriteLine(JsonSerializer.Serialize(new
        {
            library = "YingHub.Moe", benchmark = "hydra-beta-mixture", base_steps = baseSteps, steps, experts, top_k = topK, rank, batch, block, aux = coef,
            base_val = new { a = Math.Round(baseLoss.A, 4), b = Math.Round(baseLoss.B, 4) },
            mixture_val = new { a = Math.Round(mixtureLoss.A, 4), b = Math.Round(mixtureLoss.B, 4) },
            single_adapter_own_half_val = new { a = Math.Round(single[0], 4), b = Math.Round(single[1], 4) },
            base_minutes = Math.Round(baseMinutes, 1), mixture_minutes = Math.Round(mixtureMinutes, 1), threads = torch.get_num_threads(),
        }));
        return 0;
    }

    private static (long[] Train, long[] Validation) Split(long[] half) => (half[..(half.Length * 9 / 10)], half[(half.Length * 9 / 10)..]);

    private static OptimizerStepOptions Step(double lr) => new()
    {
        AdamW = new AdamWGroupOptions { LearningRate = lr, WeightDecay = 0 }, Schedule = new ConstantSchedule(lr),
    };

    /// <summary>A batch (B, T + 1) of random windows of <paramref name="sources"/>, the batch split evenly among them.</summary>
    private static Tensor Batch(long[][] sources, int batch, int block, Random random)
    {
        var rows = new long[batch * (block + 1)];
        for (int b = 0; b < batch; b++)
        {
            var source = sources[b % sources.Length];
            int start = random.Next(source.Length - block - 1);
            Array.Copy(source, start, rows, b * (block + 1), block + 1);
        }

        return torch.tensor(rows, [batch, block + 1]);
    }

    private static void Train(MoeForCausalLM model, OptimizerStep optimizer, long[][] sources, int steps, int batch, int block, int seed, Func<Tensor>? extra)
    {
        model.train();
        var random = new Random(seed);
        for (int step = 0; step < steps; step++)
        {
            using var scope = torch.NewDisposeScope();
            var rows = Batch(sources, batch, block, random);                          // (B, T + 1)
            optimizer.Step(step, _ =>
            {
                var loss = model.call(new CausalLMInput(rows[.., ..block], rows[.., 1..])).Loss!;
                return extra is null ? loss : loss + extra();
            });
            if (step % 100 == 0) Console.Error.WriteLine($"step {step}");
        }

        model.eval();
    }

    private static double Evaluate(MoeForCausalLM model, long[] source, int batches, int batch, int block, int seed)
    {
        model.eval();
        var random = new Random(seed);
        double sum = 0;
        using var noGrad = torch.no_grad();
        for (int i = 0; i < batches; i++)
        {
            using var scope = torch.NewDisposeScope();
            var rows = Batch([source], batch, block, random);
            sum += model.call(new CausalLMInput(rows[.., ..block], rows[.., 1..], RouterStatistics: false)).LmLoss!.item<float>();
        }

        return sum / batches;
    }
}
