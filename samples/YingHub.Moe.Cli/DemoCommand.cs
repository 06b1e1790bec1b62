using System.CommandLine;
using System.Diagnostics;
using TorchSharp;
using YingHub.Moe.Building;
using YingHub.Moe.Core.Checkpoints;
using YingHub.Moe.Core.Generation;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Training;
using YingHub.Moe.Training.Data;

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
        torch.manual_seed(seed);
        using var model = MoeModelBuilder.FromPreset("tiny").Vocabulary(tokenizer.VocabSize).Build();
        Console.WriteLine($"corpus {path}: {text.Length:N0} chars, vocabulary {tokenizer.VocabSize}; model: {model.ParameterCount:N0} parameters, {model.ActiveParameterCount:N0} active per token");

        // the token cache goes beside the run, not beside the (possibly shared) corpus
        using var corpus = TokenCorpus.Open(path, tokenizer, Path.Combine(outDir + ".cache", Path.GetFileName(path) + ".char.tokens"));
        var (train, validation) = BlockSampler.Split(corpus, model.Options.ContextLength, (int)seed);
        var trainer = new Trainer(model, train, validation, new TrainerOptions
        {
            Steps = steps, BatchSize = batch, LearningRate = lr, MinLearningRate = lr / 10, WarmupSteps = Math.Max(1, steps / 20),
            EvalInterval = Math.Min(100, steps), EvalBatches = 8, LogInterval = Math.Min(100, steps), WeightDecay = 0.1, Seed = seed,
        });
        trainer.Progress += p =>
        {
            if (p.ValidationLoss is { } val)
                Console.WriteLine($"step {p.Step,5}/{steps}: train loss {p.TrainLoss:F3}, val loss {val:F3}, {p.TokensPerSecond:N0} tokens/s");
        };
        var clock = Stopwatch.StartNew();
        trainer.Run();

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
}
