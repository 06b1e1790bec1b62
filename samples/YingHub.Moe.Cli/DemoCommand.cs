using System.CommandLine;
using System.Diagnostics;
using TorchSharp;
using YingHub.Moe.Building;
using YingHub.Moe.Core.Checkpoints;
using YingHub.Moe.Core.Generation;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;

namespace YingHub.Moe.Cli;

/// <summary>
/// <c>yinghub demo</c>: the README's main job. Trains the <c>tiny</c> preset on Tiny Shakespeare (char tokens) for a
/// few hundred steps on the CPU, reporting train/validation loss, then prints generated text.
/// </summary>
internal static class DemoCommand
{
    public static Command Create()
    {
        var data = new Option<string?>("--data") { Description = "Corpus file (default: tinyshakespeare.txt from $YINGHUB_DATA_DIR or ../shared/data)." };
        var steps = new Option<int>("--steps") { Description = "Training steps.", DefaultValueFactory = _ => 600 };
        var batch = new Option<int>("--batch") { Description = "Sequences per step.", DefaultValueFactory = _ => 32 };
        var lr = new Option<double>("--lr") { Description = "Peak learning rate (AdamW, warmup then cosine).", DefaultValueFactory = _ => 3e-3 };
        var tokens = new Option<int>("--tokens") { Description = "Characters to generate.", DefaultValueFactory = _ => 400 };
        var seed = new Option<long>("--seed") { Description = "Seed of weights, batches and sampling.", DefaultValueFactory = _ => 1337 };
        var output = new Option<string>("--out") { Description = "Checkpoint directory to save the trained model in.", DefaultValueFactory = _ => Path.Combine("runs", "demo") };
        var command = new Command("demo", "Train the tiny preset on Tiny Shakespeare for a few minutes and print generated text.")
            { data, steps, batch, lr, tokens, seed, output };
        command.SetAction(parse => Cli.Run(() => Run(parse.GetValue(data), parse.GetValue(steps), parse.GetValue(batch), parse.GetValue(lr),
            parse.GetValue(tokens), parse.GetValue(seed), parse.GetValue(output)!)));
        return command;
    }

    private static int Run(string? dataPath, int steps, int batch, double lr, int newTokens, long seed, string outDir)
    {
        if (steps < 1 || batch < 1 || newTokens < 0 || !(lr > 0))
            throw new CliException($"--steps ({steps}) and --batch ({batch}) must be at least 1, --tokens ({newTokens}) at least 0, --lr ({lr}) positive.", 2);
        string path = DataFiles.Locate(dataPath, "tinyshakespeare.txt");
        Cli.RequireTorch();

        string text = File.ReadAllText(path);
        var tokenizer = CharTokenizer.FromCorpus(text);
        long[] ids = tokenizer.Encode(text).Select(i => (long)i).ToArray();
        int split = (int)(ids.Length * 0.9);
        torch.manual_seed(seed);
        using var model = MoeModelBuilder.FromPreset("tiny").Vocabulary(tokenizer.VocabSize).Build();
        int block = model.Options.ContextLength;
        Console.WriteLine($"corpus {path}: {ids.Length:N0} chars, vocabulary {tokenizer.VocabSize}; model: {model.ParameterCount:N0} parameters, {model.ActiveParameterCount:N0} active per token");

        using var trainData = torch.tensor(ids[..split]);
        using var valData = torch.tensor(ids[split..]);
        using var optimizer = torch.optim.AdamW(model.parameters(), lr, weight_decay: 0.1);
        var rng = new Random((int)seed);
        int warmup = Math.Max(1, steps / 20);
        var clock = Stopwatch.StartNew();
        for (int step = 1; step <= steps; step++)
        {
            double progress = step <= warmup ? (double)step / warmup : 0.1 + 0.9 * 0.5 * (1 + Math.Cos(Math.PI * (step - warmup) / (steps - warmup + 1)));
            foreach (var group in optimizer.ParamGroups) group.LearningRate = lr * progress;
            using (torch.NewDisposeScope())
            {
                var (x, y) = Batch(trainData, batch, block, rng);
                using var output = model.call(new CausalLMInput(x, y));
                optimizer.zero_grad();
                output.Loss!.backward();
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0);
                optimizer.step();
                if (step % 100 == 0 || step == steps)
                {
                    double train = output.LmLoss!.item<float>();
                    double val = Evaluate(model, valData, batch, block, rng);
                    Console.WriteLine($"step {step,5}/{steps}: train loss {train:F3}, val loss {val:F3}, {(double)step * batch * block / clock.Elapsed.TotalSeconds:N0} tokens/s");
                }
            }
        }

        MoeCheckpoint.Save(model, outDir, staging => TokenizerFiles.Save(tokenizer, staging));
        Console.WriteLine($"trained {steps} steps in {clock.Elapsed.TotalSeconds:F0} s; saved to {outDir} (try: yinghub generate --checkpoint {outDir}); generating {newTokens} characters:");
        Console.WriteLine(new string('-', 60));
        var sampling = new SamplingOptions { MaxNewTokens = newTokens, Temperature = 0.8, TopK = 20, Seed = seed };
        foreach (long token in new TokenGenerator(model).Stream([tokenizer.Encode("\n")[0]], sampling))
            Console.Write(tokenizer.Decode([(int)token]));
        Console.WriteLine();
        Console.WriteLine(new string('-', 60));
        return 0;
    }

    /// <summary>Random contiguous blocks: inputs (B, T) and the next-token targets (B, T).</summary>
    private static (torch.Tensor X, torch.Tensor Y) Batch(torch.Tensor data, int batch, int block, Random rng)
    {
        var starts = Enumerable.Range(0, batch).Select(_ => (long)rng.Next((int)data.shape[0] - block - 1)).ToArray();
        var offsets = torch.tensor(starts).unsqueeze(1) + torch.arange(block).unsqueeze(0); // (B, T)
        return (data[offsets], data[offsets + 1]);
    }

    private static double Evaluate(MoeForCausalLM model, torch.Tensor data, int batch, int block, Random rng, int batches = 8)
    {
        model.eval();
        double sum = 0;
        using (torch.no_grad())
        {
            for (int i = 0; i < batches; i++)
            {
                using var scope = torch.NewDisposeScope();
                var (x, y) = Batch(data, batch, block, rng);
                using var output = model.call(new CausalLMInput(x, y));
                sum += output.LmLoss!.item<float>();
            }
        }

        model.train();
        return sum / batches;
    }
}
