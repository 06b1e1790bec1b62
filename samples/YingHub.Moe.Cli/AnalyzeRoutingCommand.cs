using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Training.Analysis;
using YingHub.Moe.Training.Data;

namespace YingHub.Moe.Cli;

/// <summary>
/// <c>yinghub analyze-routing</c>: records a checkpoint's routing over a text file (and an early checkpoint's, on the
/// same tokens) and writes the routing report: JSON, PNG figures and the top-token table (docs/routing-analysis.md).
/// </summary>
internal static class AnalyzeRoutingCommand
{
    public static Command Create()
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "Checkpoint directory analysed (the final one).", Required = true };
        var data = new Option<string>("--data") { Description = "A text file, or 'tinyshakespeare'.", Required = true };
        var early = new Option<string?>("--early-checkpoint") { Description = "An early checkpoint of the same run: adds the top-1 agreement with it per layer (early routing learning)." };
        var capacity = Cli.OptionalDouble("--capacity-factor", "Apply expert capacity with this factor in (0, 1024] while recording, even if the model has none in evaluation (drop towards the end).");
        var tokens = new Option<int>("--tokens") { Description = "Tokens recorded at most, in whole blocks of the context length.", DefaultValueFactory = _ => 32_768 };
        var split = new Option<string>("--split") { Description = "Which tokens: 'heldout' (the last 10%, the split training validates on) or 'all' (the file from its start).", DefaultValueFactory = _ => "heldout" };
        var batch = new Option<int>("--batch") { Description = "Blocks per forward (capacity counts every token of a forward).", DefaultValueFactory = _ => 8 };
        var buckets = new Option<int>("--buckets") { Description = "Position buckets of the dropped share.", DefaultValueFactory = _ => 8 };
        var seed = new Option<int>("--seed") { Description = "Seed of the shuffled specialization baseline.", DefaultValueFactory = _ => 1337 };
        var output = new Option<string>("--out") { Description = "Directory for routing-report.json, the PNG figures and top-tokens.md.", Required = true };
        var json = new Option<bool>("--json") { Description = "Print one JSON object line: the per-layer summary and the files written." };
        var command = new Command("analyze-routing", "Analyse a checkpoint's routing over a text file: specialization, early routing learning, drops by position, expert load.")
            { checkpoint, data, early, capacity, tokens, split, batch, buckets, seed, output, json };
        command.SetAction(parse => Cli.Run(() => Run(parse.GetValue(checkpoint)!, parse.GetValue(data)!, parse.GetValue(early), parse.GetValue(split)!,
            new RoutingRecorderOptions { Tokens = parse.GetValue(tokens), BatchSize = parse.GetValue(batch), CapacityFactor = parse.GetValue(capacity) },
            new RoutingAnalysisOptions { PositionBuckets = parse.GetValue(buckets), Seed = parse.GetValue(seed) },
            parse.GetValue(output)!, parse.GetValue(json))));
        return command;
    }

    private static int Run(string checkpoint, string data, string? earlyCheckpoint, string split, RoutingRecorderOptions recording,
        RoutingAnalysisOptions analysis, string outDir, bool json)
    {
        var problems = recording.GetValidationErrors().Concat(analysis.GetValidationErrors()).ToList();
        if (problems.Count > 0)
            throw new CliException(string.Join(" ", problems.Select(e => e.Message))
                .Replace(nameof(RoutingRecorderOptions.Tokens) + " =", "--tokens =").Replace(nameof(RoutingRecorderOptions.BatchSize) + " =", "--batch =")
                .Replace(nameof(RoutingRecorderOptions.CapacityFactor) + " =", "--capacity-factor =").Replace(nameof(RoutingAnalysisOptions.PositionBuckets) + " =", "--buckets ="), 2);
        if (split is not ("heldout" or "all")) throw new CliException($"--split must be 'heldout' or 'all'; got '{split}'.", 2);
        string path = DataFiles.Corpus(data);
        Cli.RequireTorch();
        var (model, tokenizer) = CheckpointLoader.Load(checkpoint);
        using (model)
        {
            using var corpus = OpenCorpus(path, tokenizer, checkpoint);
            long start = split == "all" ? 0 : (long)(corpus.Count * 0.9), length = corpus.Count - start;
            int block = model.Options.ContextLength;
            if (length < block)
                throw new CliException($"Corpus '{path}' is too short: its {(split == "all" ? "" : "held-out 10% ")}{length} tokens hold no block of the context length {block}.");
            var final = RoutingRecorder.Record(model, corpus, start, length, recording);
            RoutingRecording? earlyRecording = null;
            if (earlyCheckpoint is not null)
            {
                var (earlyModel, earlyTokenizer) = CheckpointLoader.Load(earlyCheckpoint);
                using (earlyModel)
                {
                    var (a, b) = (model.Options, earlyModel.Options);
                    if (earlyTokenizer.Name != tokenizer.Name || earlyTokenizer.VocabSize != tokenizer.VocabSize || a.NumLayers != b.NumLayers
                        || a.NumExperts != b.NumExperts || a.ContextLength != b.ContextLength || a.MoeEvery != b.MoeEvery)
                        throw new CliException($"--early-checkpoint '{earlyCheckpoint}' is not an earlier state of '{checkpoint}': its tokenizer ({earlyTokenizer.Name}, {earlyTokenizer.VocabSize} ids), "
                            + $"layers ({b.NumLayers}), experts ({b.NumExperts}) or context ({b.ContextLength}) differ from {tokenizer.Name}, {tokenizer.VocabSize}, {a.NumLayers}, {a.NumExperts}, {a.ContextLength}.");
                    // top-1 agreement compares the routers' own choices: no capacity for the early model's recording
                    earlyRecording = RoutingRecorder.Record(earlyModel, corpus, start, length, recording with { CapacityFactor = null });
                }
            }

            var report = RoutingReport.Build(final, earlyRecording, recording.CapacityFactor, analysis);
            var files = RoutingReportWriter.Write(outDir, report, tokenizer);
            if (json)
            {
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    checkpoint = Path.GetFullPath(checkpoint), early_checkpoint = earlyCheckpoint is null ? null : Path.GetFullPath(earlyCheckpoint), data = path,
                    tokens = report.Tokens, block_length = report.BlockLength, capacity_factor = report.CapacityFactor,
                    layers = report.Layers.Select(l => new
                    {
                        layer = l.Layer, specialization = l.Specialization, shuffled_specialization = l.ShuffledSpecialization, load_cv = l.LoadCv,
                        dropped_share = l.DroppedShare, early_agreement = l.EarlyAgreement, chance_agreement = l.ChanceAgreement,
                    }),
                    files,
                }));
            }
            else
            {
                Console.WriteLine($"{Path.GetFullPath(checkpoint)}: routing of {report.Tokens:N0} tokens ({report.Tokens / report.BlockLength} blocks of {report.BlockLength}) of {path}"
                    + (report.CapacityFactor is { } cf ? $", capacity factor {cf.ToString(CultureInfo.InvariantCulture)}" : ""));
                Console.WriteLine("layer  specialization (shuffled)  load CV  dropped" + (earlyRecording is null ? "" : "  early agreement (chance)"));
                foreach (var l in report.Layers)
                {
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{l.Layer,5}  {l.Specialization,14:F3} ({l.ShuffledSpecialization:F3})  {l.LoadCv,7:F3}  {l.DroppedShare,7:P1}")
                        + (l.EarlyAgreement is { } agree ? string.Create(CultureInfo.InvariantCulture, $"  {agree,15:F3} ({l.ChanceAgreement:F3})") : ""));
                }

                Console.WriteLine($"wrote {string.Join(", ", files.Select(Path.GetFileName))} to {Path.GetFullPath(outDir)}");
            }

            return 0;
        }
    }

    /// <summary>The corpus's token cache, in the temporary directory (analysing writes nothing beside the corpus or the checkpoint).</summary>
    private static TokenCorpus OpenCorpus(string path, ITextTokenizer tokenizer, string checkpoint)
    {
        try
        {
            TokenizerCompatibility.EnsureEncodable(tokenizer, File.ReadAllText(path), $"Corpus '{path}'");
        }
        catch (ArgumentException ex)
        {
            throw new CliException($"{Cli.MessageOf(ex)} The checkpoint '{checkpoint}' cannot analyse it.");
        }

        string cache = Path.Combine(Path.GetTempPath(), "yinghub-eval", $"{Path.GetFileName(path)}.{tokenizer.Name}.{tokenizer.VocabSize}.tokens");
        return TokenCorpus.Open(path, tokenizer, cache);
    }
}
