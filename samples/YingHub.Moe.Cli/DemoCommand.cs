using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using YingHub.Moe.Core.Generation;
using YingHub.Moe.Core.Tokenizers;

namespace YingHub.Moe.Cli;

/// <summary>
/// <c>yinghub demo</c>: the README's main job. <c>yinghub train</c> of the <c>tiny</c> preset on Tiny Shakespeare (char
/// tokens) for a few hundred steps on the CPU, reporting train/validation loss, then generated text.
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
        var clock = Stopwatch.StartNew();
        var settings = new JsonObject
        {
            ["data"] = dataPath ?? TrainConfig.DefaultData,
            ["trainer"] = new JsonObject { ["steps"] = steps, ["batch_size"] = batch, ["learning_rate"] = lr, ["seed"] = seed, ["checkpoint_directory"] = outDir },
        };
        var recipe = TrainConfig.Recipe(TrainConfig.Merge(settings, parse: null, progressBar: false), "demo", baseDirectory: null);
        var (model, tokenizer, _) = TrainCommand.Train(new TrainSettings(recipe));
        using var owned = model;
        Console.WriteLine($"trained {steps} steps in {clock.Elapsed.TotalSeconds:F0} s (try: yinghub generate --checkpoint {outDir}); generating {newTokens} characters:");
        Console.WriteLine(new string('-', 60));
        var sampling = new SamplingOptions { MaxNewTokens = newTokens, Temperature = 0.8, TopK = 20, Seed = seed };
        var decoder = new TextStreamDecoder(tokenizer);
        foreach (long token in new TokenGenerator(model).Stream([tokenizer.Encode("\n")[0]], sampling))
            Console.Write(decoder.Push((int)token));
        Console.WriteLine(decoder.Flush());
        Console.WriteLine(new string('-', 60));
        return 0;
    }
}
