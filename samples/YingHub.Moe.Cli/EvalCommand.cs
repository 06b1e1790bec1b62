using System.CommandLine;
using System.Text.Json;
using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Training.Data;
using YingHub.Moe.Training.Evaluation;

namespace YingHub.Moe.Cli;

/// <summary><c>yinghub eval</c>: a checkpoint's mean LM loss and perplexity on the held-out part of a text file.</summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "Checkpoint directory (config.json, model.safetensors, tokenizer.json), or a Hugging Face Mixtral directory.", Required = true };
        var data = new Option<string>("--data") { Description = "A text file, or 'tinyshakespeare'. Its last 10% (the split training validates on) is evaluated.", DefaultValueFactory = _ => "tinyshakespeare" };
        var batches = new Option<int>("--batches") { Description = "Batches averaged.", DefaultValueFactory = _ => 20 };
        var batch = new Option<int>("--batch") { Description = "Blocks per batch.", DefaultValueFactory = _ => 16 };
        var seed = new Option<long>("--seed") { Description = "Seed of the block positions (training's validation blocks use the training seed).", DefaultValueFactory = _ => 1337 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object line: loss, perplexity, tokens, batches (and with --quantize the weight bytes before and after)." };
        var quantize = QuantizeOption.Create();
        var command = new Command("eval", "Measure a checkpoint's mean LM loss and perplexity on held-out blocks of a text file.") { checkpoint, data, batches, batch, seed, json, quantize };
        command.SetAction(parse => Cli.Run(() => Run(parse.GetValue(checkpoint)!, parse.GetValue(data)!, parse.GetValue(batches), parse.GetValue(batch),
            parse.GetValue(seed), parse.GetValue(json), parse.GetValue(quantize))));
        return command;
    }

    private static int Run(string checkpoint, string data, int batches, int batchSize, long seed, bool json, string? quantize)
    {
        if (batches is < 1 or > 100_000 || batchSize is < 1 or > 65_536)
            throw new CliException($"--batches ({batches}) must be in [1, 100000] and --batch ({batchSize}) in [1, 65536].", 2);
        string path = DataFiles.Corpus(data);
        var quantizeKind = QuantizeOption.Parse(quantize);
        Cli.RequireTorch();
        var (model, tokenizer) = CheckpointLoader.Load(checkpoint);
        using (model)
        {
            try
            {
                TokenizerCompatibility.EnsureEncodable(tokenizer, File.ReadAllText(path), $"Corpus '{path}'");
            }
            catch (ArgumentException ex)
            {
                throw new CliException($"{Cli.MessageOf(ex)} The checkpoint '{checkpoint}' cannot evaluate it.");
            }

            // the token cache goes to the temporary directory: evaluating writes nothing beside the corpus or the checkpoint
            string cache = Path.Combine(Path.GetTempPath(), "yinghub-eval", $"{Path.GetFileName(path)}.{tokenizer.Name}.{tokenizer.VocabSize}.tokens");
            using var corpus = TokenCorpus.Open(path, tokenizer, cache);
            long heldOut = corpus.Count - (long)(corpus.Count * 0.9);
            int block = (int)Math.Min(model.Options.ContextLength, heldOut - 1);
            if (block < 1) throw new CliException($"Corpus '{path}' is too short: its held-out 10% holds {heldOut} tokens.");
            var (_, validation) = BlockSampler.Split(corpus, block, (int)seed);
            var quantized = QuantizeOption.Apply(model, quantizeKind);
            var result = LossEvaluator.Evaluate(model, validation, batches, batchSize);
            if (json)
            {
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    loss = result.Loss, perplexity = result.Perplexity, tokens = result.Tokens, batches = result.Batches,
                    block, checkpoint = Path.GetFullPath(checkpoint), data = path,
                    quantize = quantized?.Kind.ToString().ToLowerInvariant(), weight_bytes_before = quantized?.WeightBytesBefore,
                    weight_bytes_after = quantized?.WeightBytesAfter, model_bytes_before = quantized?.ModelBytesBefore, model_bytes_after = quantized?.ModelBytesAfter,
                }));
            }
            else
            {
                Console.WriteLine($"{Path.GetFullPath(checkpoint)} on the held-out 10% of {path}:");
                if (quantized is not null) Console.WriteLine(QuantizeOption.Describe(quantized));
                Console.WriteLine($"loss {result.Loss:F4} nats/token, perplexity {result.Perplexity:F2} ({result.Batches} batches of {batchSize} × {block} tokens = {result.Tokens:N0} tokens)");
            }

            return 0;
        }
    }
}
