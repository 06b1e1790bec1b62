using System.CommandLine;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Generation;
using YingHub.Moe.Core.Tokenizers;

namespace YingHub.Moe.Cli;

/// <summary>
/// <c>yinghub generate</c>: streams text from a checkpoint; <c>yinghub ftgenerate</c>: the same from a PPO-fine-tuned
/// checkpoint, by default the one <c>yinghub rlhf</c> writes (<see cref="FineTunedCheckpoint"/>).
/// </summary>
internal static class GenerateCommand
{
    /// <summary>Where <c>yinghub rlhf</c> saves its policy, and where <c>ftgenerate</c> looks without <c>--checkpoint</c>.</summary>
    public static readonly string FineTunedCheckpoint = Path.Combine("runs", "rlhf");

    public static Command Create() => Create("generate", "Generate text from a checkpoint, streaming it as it is decoded.", null);

    public static Command CreateFineTuned() => Create("ftgenerate",
        $"Generate text from a PPO-fine-tuned checkpoint (default: '{FineTunedCheckpoint}', where 'yinghub rlhf' saves it).", FineTunedCheckpoint);

    private static Command Create(string name, string description, string? defaultCheckpoint)
    {
        var checkpoint = defaultCheckpoint is null
            ? new Option<string>("--checkpoint") { Description = "Checkpoint directory (config.json, model.safetensors, tokenizer.json).", Required = true }
            : new Option<string>("--checkpoint") { Description = $"Checkpoint directory (default: {defaultCheckpoint}).", DefaultValueFactory = _ => defaultCheckpoint };
        var prompt = new Option<string>("--prompt") { Description = "Text to continue (default: a newline).", DefaultValueFactory = _ => "\n" };
        var tokens = new Option<int>("--tokens") { Description = "New tokens to generate.", DefaultValueFactory = _ => 300 };
        var temperature = new Option<double>("--temperature") { Description = "Sampling temperature.", DefaultValueFactory = _ => 0.8 };
        var anneal = new Option<bool>("--anneal") { Description = "Cosine-anneal the temperature over the generated length, from --temperature down to --min-temperature." };
        var minTemperature = new Option<double?>("--min-temperature")
            { Description = $"Floor of the annealed temperature, in (0, --temperature] (default: {SamplingOptions.DefaultMinTemperatureRatio} x --temperature)." };
        var topK = new Option<int?>("--top-k") { Description = "Keep the k most likely tokens." };
        var topP = new Option<double?>("--top-p") { Description = "Nucleus sampling mass." };
        var repetition = new Option<double>("--repetition-penalty") { Description = "CTRL repetition penalty (1 = off).", DefaultValueFactory = _ => 1.0 };
        var seed = new Option<long?>("--seed") { Description = "Seed for reproducible sampling." };
        var noCache = new Option<bool>("--no-cache") { Description = "Recompute the whole window for every token instead of using the KV cache." };
        var asPrefix = new Option<bool>("--prompt-as-prefix") { Description = "Read the prompt with bidirectional attention, as a prefix (for models trained with --objective ul2 or prefix LM, e.g. a prompt starting with [S])." };
        var output = new Option<string?>("--out") { Description = "Also write the generated text to this file." };
        var json = new Option<bool>("--json") { Description = "End with one JSON object line: text, tokens, tokens_per_s, time_to_first_token_ms, steady_tokens_per_s (the tokens after the first), kv_cache, routing (with --trace-routing)." };
        var traceRouting = new Option<bool>("--trace-routing") { Description = "After the text, show per generated token the experts and gate weights it used in every MoE layer (and in the --json line)." };
        var quantize = QuantizeOption.Create();
        var command = new Command(name, description)
            { checkpoint, prompt, tokens, temperature, anneal, minTemperature, topK, topP, repetition, seed, noCache, asPrefix, output, json, traceRouting, quantize };
        command.SetAction(parse => Cli.Run(() => Run(RequireCheckpoint(parse.GetValue(checkpoint)!, defaultCheckpoint), parse.GetValue(prompt)!, new SamplingOptions
        {
            MaxNewTokens = parse.GetValue(tokens), Temperature = parse.GetValue(temperature), AnnealTemperature = parse.GetValue(anneal),
            MinTemperature = parse.GetValue(minTemperature),
            TopK = parse.GetValue(topK), TopP = parse.GetValue(topP), RepetitionPenalty = parse.GetValue(repetition),
            Seed = parse.GetValue(seed), UseCache = !parse.GetValue(noCache), PromptAsPrefix = parse.GetValue(asPrefix),
        }, parse.GetValue(output), parse.GetValue(json), parse.GetValue(traceRouting), parse.GetValue(quantize))));
        return command;
    }

    /// <summary>The checkpoint to load; at the default fine-tuned location a missing directory says how to make one.</summary>
    private static string RequireCheckpoint(string checkpoint, string? defaultCheckpoint)
    {
        if (defaultCheckpoint is not null && checkpoint == defaultCheckpoint && !Directory.Exists(checkpoint))
            throw new CliException($"No fine-tuned checkpoint in '{checkpoint}': run 'yinghub rlhf' first, or pass --checkpoint DIR.");
        return checkpoint;
    }

    private static int Run(string checkpoint, string prompt, SamplingOptions sampling, string? outFile, bool json, bool traceRouting, string? quantize)
    {
        IReadOnlyList<OptionError> problems = sampling.GetValidationErrors();
        if (problems.Count > 0) throw new CliException(string.Join(" ", problems.Select(e => e.Message)), 2);

        var quantizeKind = QuantizeOption.Parse(quantize);
        Cli.RequireTorch();
        var (model, tokenizer) = CheckpointLoader.Load(checkpoint);

        using (model)
        {
            if (QuantizeOption.Apply(model, quantizeKind) is { } quantized) Console.Error.WriteLine(QuantizeOption.Describe(quantized));
            int[] ids;
            try
            {
                ids = tokenizer.Encode(prompt);
            }
            catch (ArgumentException ex)
            {
                throw new CliException($"The prompt cannot be encoded: {ex.Message}");
            }

            if (ids.Length == 0 || ids.Length > model.Options.ContextLength)
                throw new CliException($"The prompt has {ids.Length} tokens; it needs between 1 and the model's context length {model.Options.ContextLength}.");

            var decoder = new TextStreamDecoder(tokenizer);
            var text = new StringBuilder();
            var clock = Stopwatch.StartNew();
            var speed = new DecodeSpeed();
            var generated = new List<long>();
            Console.Write(prompt);
            foreach (long token in new TokenGenerator(model).Stream(ids.Select(i => (long)i).ToArray(), sampling))
            {
                speed.Token(clock.Elapsed);
                generated.Add(token);
                string piece = decoder.Push((int)token);
                text.Append(piece);
                Console.Write(piece);
            }

            string rest = decoder.Flush();
            text.Append(rest);
            Console.WriteLine(rest);
            if (outFile is not null) File.WriteAllText(outFile, prompt + text);
            var trace = traceRouting ? RoutingTrace.Trace(model, ids, generated) : null;
            if (trace is not null && !json) Console.Write(RoutingTrace.Format(trace, tokenizer));
            string how = sampling.UseCache && model.SupportsCachedDecoding ? "KV cache" : "recompute"; // capacity in evaluation recomputes
            if (json)
            {
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    text = text.ToString(), tokens = speed.Tokens, tokens_per_s = Math.Round(speed.TokensPerSecond, 1),
                    time_to_first_token_ms = Math.Round(speed.FirstToken.TotalMilliseconds, 1), steady_tokens_per_s = speed.SteadyTokensPerSecond is { } steady ? Math.Round(steady, 1) : (double?)null,
                    kv_cache = how == "KV cache", routing = trace,
                }));
            }
            else
            {
                Console.Error.WriteLine($"{speed.Tokens} tokens in {speed.Total.TotalSeconds:F2} s ({speed.TokensPerSecond:F1} tokens/s; first token after "
                    + $"{speed.FirstToken.TotalMilliseconds:F0} ms, then {speed.SteadyTokensPerSecond ?? 0:F1} tokens/s; {how})");
            }

            return 0;
        }
    }
}

/// <summary>
/// What a user waits for: the time to the first token (the prompt's forward, and any first-use cost) apart from the
/// steady rate of the tokens after it.
/// </summary>
internal sealed class DecodeSpeed
{
    /// <summary>Tokens seen.</summary>
    public int Tokens { get; private set; }

    /// <summary>From the start of decoding to the first token.</summary>
    public TimeSpan FirstToken { get; private set; }

    /// <summary>From the start of decoding to the last token.</summary>
    public TimeSpan Total { get; private set; }

    /// <summary>All tokens over the whole time.</summary>
    public double TokensPerSecond => Tokens / Math.Max(Total.TotalSeconds, 1e-9);

    /// <summary>The tokens after the first over the time after it; null with fewer than two tokens.</summary>
    public double? SteadyTokensPerSecond => Tokens < 2 ? null : (Tokens - 1) / Math.Max((Total - FirstToken).TotalSeconds, 1e-9);

    /// <summary>A token arrived <paramref name="elapsed"/> after decoding started.</summary>
    public void Token(TimeSpan elapsed)
    {
        if (Tokens++ == 0) FirstToken = elapsed;
        Total = elapsed;
    }
}
