using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Rewards;
using YingHub.Moe.Core.Generation;
using YingHub.Moe.Rl;
using YingHub.Moe.Rl.BestOfN;
using YingHub.Moe.Rl.Rewards;
using YingHub.Moe.Training.Checkpointing;
using YingHub.Moe.Training.Tracking;

namespace YingHub.Moe.Cli;

/// <summary>
/// <c>yinghub rlhf</c>: fine-tunes a checkpoint toward a reward with PPO or GRPO (<see cref="RlhfTrainer"/>) and saves
/// the policy where <c>yinghub ftgenerate</c> looks for it. Settings come from the flags, a <c>--config</c> file of
/// <see cref="RlhfOptions"/> (snake_case keys; flags override it) and the defaults.
/// </summary>
internal static class RlhfCommand
{
    public static Command Create()
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "The checkpoint to fine-tune (its weights also become the frozen reference).", Required = true };
        var algorithm = new Option<string?>("--algorithm") { Description = "ppo (value head, GAE, KL in the reward) or grpo (group-normalised rewards, KL in the loss). Default: ppo." };
        algorithm.AcceptOnlyFromAmong("ppo", "grpo");
        var reward = new Option<string>("--reward")
        {
            Description = $"The reward: a built-in name ({string.Join(", ", RewardParser.KnownNames)}) or weights as JSON, inline or in a .json file, e.g. '{{\"shakespeare\": 1, \"distinct_words\": 0.2}}'.",
            DefaultValueFactory = _ => RewardParser.Shakespeare,
        };
        var lexicon = new Option<string?>("--lexicon") { Description = "CMU Pronouncing Dictionary for the shakespeare reward (default: cmudict.dict from $YINGHUB_DATA_DIR or ../shared/data)." };
        var prompts = new Option<string?>("--prompts") { Description = "A text file of prompts, one per line (the line and its newline are the prompt). Default: lines of Tiny Shakespeare (training prompts from its first 90%, held-out ones from the rest)." };
        var iterations = Cli.OptionalLong("--iterations", "Rollout-and-update iterations. Default: 100.");
        var batch = Cli.OptionalInt("--batch", "Prompts per iteration. Default: 16.");
        var group = Cli.OptionalInt("--group", "Responses per prompt (GRPO needs >= 2). Default: 1 for PPO, 4 for GRPO.");
        var responseTokens = Cli.OptionalInt("--response-tokens", "New tokens per response. Default: 48.");
        var curriculum = new Option<string?>("--curriculum")
        {
            Description = "Response length per iteration, capped at --response-tokens: constant:N, linear:START:STEP (START + STEP per iteration) or yinghub-v2 (48, +4 per iteration for ten, then +2). Default: --response-tokens throughout.",
        };
        var lr = Cli.OptionalDouble("--lr", "Policy learning rate. Default: 1e-5.");
        var klCoef = Cli.OptionalDouble("--kl-coef", "Initial KL coefficient beta. Default: 0.05.");
        var klTarget = Cli.OptionalDouble("--kl-target", "Target mean KL per sequence for the adaptive controller (Ziegler et al.); without it beta stays fixed.");
        var freeze = new Option<string[]>("--freeze")
        {
            Description = "Freeze parameters (repeatable): embeddings, blocks:N, attention, routers, experts, lm_head, or a glob over parameter names.",
            AllowMultipleArgumentsPerToken = false,
        };
        var replay = new Option<string?>("--replay") { Description = "Rollout routing replay: the update reuses each response token's experts from the rollout (on) or routes afresh (off). Default: on." };
        replay.AcceptOnlyFromAmong("on", "off");
        var output = new Option<string>("--out") { Description = $"Checkpoint directory of the fine-tuned policy. Default: {GenerateCommand.FineTunedCheckpoint}.", DefaultValueFactory = _ => GenerateCommand.FineTunedCheckpoint };
        var config = new Option<string?>("--config") { Description = "A JSON file of RlhfOptions with snake_case keys (e.g. epochs, mini_batch_size, value_learning_rate, entropy_coef, routing_replay); flags given here override it." };
        var seed = Cli.OptionalLong("--seed", "Seed of prompts, sampling and shuffles. Default: 1337.");
        var evalPrompts = Cli.OptionalInt("--eval-prompts", "Held-out prompts scored before and after (0: none). Default: 64.");
        var saveEvery = Cli.OptionalLong("--save-every", "Save a resumable checkpoint every N iterations; 0: only at the end. Default: 0.");
        var resume = new Option<bool>("--resume") { Description = "Continue the run saved in --out (build it from the same --checkpoint and settings)." };
        var json = new Option<bool>("--json") { Description = "No progress bar; end with one JSON object line: reward_before, reward_after, kl, beta, iterations, checkpoint, collapsed." };
        var tensorBoard = new Option<bool>("--tensorboard") { Description = "Also write TensorBoard event files (in {out}.cache/tensorboard)." };
        var mlflow = new Option<string?>("--mlflow") { Description = "Log the run to this MLflow tracking server (default: $MLFLOW_TRACKING_URI if set)." };
        var command = new Command("rlhf", "Fine-tune a checkpoint toward a reward with PPO or GRPO, against a frozen copy of itself.")
            { checkpoint, algorithm, reward, lexicon, prompts, iterations, batch, group, responseTokens, curriculum, lr, klCoef, klTarget, freeze, replay, output, config, seed, evalPrompts, saveEvery, resume, json, tensorBoard, mlflow };
        command.SetAction(parse => Cli.Run(() =>
        {
            var options = parse.GetValue(config) is { } path ? ReadConfig(path) : new RlhfOptions();
            if (parse.GetValue(algorithm) is { } a) options.Algorithm = a == "grpo" ? RlAlgorithm.Grpo : RlAlgorithm.Ppo;
            if (parse.GetValue(group) is { } g) options.GroupSize = g;
            else if (options.Algorithm == RlAlgorithm.Grpo && options.GroupSize < 2) options.GroupSize = 4;
            if (parse.GetValue(iterations) is { } n) options.Iterations = n;
            if (parse.GetValue(batch) is { } b) options.PromptsPerIteration = b;
            if (parse.GetValue(responseTokens) is { } r) options.ResponseTokens = r;
            if (parse.GetValue(curriculum) is { } c) options.Curriculum = c;
            if (parse.GetValue(lr) is { } l) options.LearningRate = l;
            if (parse.GetValue(klCoef) is { } k) options.KlCoef = k;
            if (parse.GetValue(klTarget) is { } kt) options.KlTarget = kt;
            if (parse.GetValue(freeze) is { Length: > 0 } f) options.Freeze = [.. f];
            if (parse.GetValue(replay) is { } rp) options.RoutingReplay = rp == "on";
            if (parse.GetValue(seed) is { } s) options.Seed = s;
            if (parse.GetValue(evalPrompts) is { } e) options.EvaluationPrompts = e;
            if (parse.GetValue(saveEvery) is { } se) options.SaveEvery = se;
            options.MiniBatchSize = Math.Min(options.MiniBatchSize, options.RolloutSequences);
            options.CheckpointDirectory = parse.GetValue(output)!;
            var problems = options.GetValidationErrors();
            if (problems.Count > 0) throw new CliException(string.Join(" ", problems.Select(p => p.Message)), 2);

            bool asJson = parse.GetValue(json);
            using var stop = new StopSignals();
            var result = Run(parse.GetValue(checkpoint)!, options, parse.GetValue(reward)!, parse.GetValue(lexicon), parse.GetValue(prompts), parse.GetValue(resume),
                new TrackingSettings(parse.GetValue(tensorBoard), parse.GetValue(mlflow) ?? NonEmpty(Environment.GetEnvironmentVariable("MLFLOW_TRACKING_URI"))),
                TrainingProgressView.UseBar(asJson), stop.Token);
            if (asJson)
            {
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    reward_before = result.RewardBefore?.Mean, reward_before_stderr = Finite(result.RewardBefore?.StandardError),
                    reward_after = result.RewardAfter?.Mean, reward_after_stderr = Finite(result.RewardAfter?.StandardError),
                    kl = Finite(result.Kl), beta = result.Beta, iterations = result.Iterations,
                    checkpoint = result.Checkpoint, collapsed = result.Collapsed,
                }));
            }

            if (stop.Received is not { } signal) return 0;
            Console.Error.WriteLine($"{signal}: stopped at iteration {result.Iterations}; checkpoint saved to {result.Checkpoint} (continue with --resume).");
            return StopSignals.ExitCode(signal);
        }));
        return command;
    }

    private static RlhfResult Run(string checkpoint, RlhfOptions options, string rewardSpec, string? lexiconPath, string? promptsFile, bool resume,
        TrackingSettings tracking, bool progressBar, CancellationToken stop)
    {
        var reward = ParseReward(rewardSpec, lexiconPath);
        Cli.RequireTorch();
        var (model, tokenizer) = CheckpointLoader.Load(checkpoint);
        using (model)
        {
            var (train, heldOut, source) = Prompts(promptsFile, tokenizer, model.Options.ContextLength - options.ResponseTokens);
            Console.WriteLine($"{options.Algorithm} on {Path.GetFullPath(checkpoint)}: {model.ParameterCount:N0} parameters; {train.Count:N0} training and {heldOut.Count:N0} held-out prompts from {source}; reward {rewardSpec}");
            string? resumeFrom = null;
            if (resume)
            {
                try
                {
                    resumeFrom = CheckpointStore.FindNewestComplete(options.CheckpointDirectory!);
                }
                catch (InvalidDataException ex)
                {
                    throw new CliException($"--resume: there is no complete run in '{options.CheckpointDirectory}' to continue: {ex.Message}");
                }
            }

            using var trainer = new RlhfTrainer(model, tokenizer, reward, train, options, heldOut);
            Console.WriteLine($"reference model (frozen copy): {trainer.Reference.ParameterBytes / 1e6:F1} MB");
            string? vocab = tokenizer.Name == "gpt2" ? Path.Combine(checkpoint, "vocab.json") : null;
            trainer.CheckpointExtras = staging => TokenizerFiles.Save(tokenizer, staging, vocab);
            if (resumeFrom is not null)
            {
                trainer.Resume(resumeFrom);
                Console.WriteLine($"resumed at iteration {trainer.Iteration} from {resumeFrom}");
            }

            using var tracker = CreateTracker(options.CheckpointDirectory!, tracking);
            trainer.Tracker = tracker;
            var result = TrainingProgressView.RunIterations(progressBar, trainer.Iteration, options.Iterations, report =>
            {
                trainer.Progress += p => report(p.Iteration, Describe(p));
                return trainer.Run(stop);
            });
            if (result.Collapsed)
                Console.WriteLine($"stopped at iteration {result.Iterations}: the collapse guard saw collapsed responses (collapse/* in the metrics); the last checkpoint is the collapsed policy");
            if (result.RewardBefore is { } before && result.RewardAfter is { } after)
                Console.WriteLine($"held-out reward: {before.Mean:F4} ± {before.StandardError:F4} before, {after.Mean:F4} ± {after.StandardError:F4} after ({after.Count} responses)");
            Console.WriteLine($"saved {result.Checkpoint} ({result.Iterations} iterations); metrics and plots in {Path.GetFullPath(options.CheckpointDirectory + ".cache")}; sample it with 'yinghub ftgenerate --checkpoint {options.CheckpointDirectory}'");
            return result;
        }
    }

    /// <summary>The reward named by <c>--reward</c>; the lexicon is only read when the reward uses it (shakespeare).</summary>
    private static IRewardFunction ParseReward(string spec, string? lexiconPath)
    {
        string? lexicon = lexiconPath is not null ? DataFiles.Locate(lexiconPath, "cmudict.dict") : DataFiles.TryLocate("cmudict.dict");
        try
        {
            return RewardParser.Parse(spec, lexicon);
        }
        catch (Exception ex) when (ex is ArgumentException or IOException or InvalidDataException)
        {
            throw new CliException($"--reward: {Cli.MessageOf(ex)}{(lexicon is null ? " (--lexicon FILE, or YINGHUB_DATA_DIR holding cmudict.dict)" : "")}", 2);
        }
    }

    /// <summary>
    /// <c>yinghub best-of-n</c>: the baseline that needs no training: n samples per held-out prompt (the prompts
    /// <c>yinghub rlhf</c> scores before and after), the best kept by the same reward; its KL to the model is log n − (n − 1)/n.
    /// </summary>
    public static Command CreateBestOfN()
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "The checkpoint to sample from.", Required = true };
        var n = new Option<int>("--n") { Description = "Samples per prompt; the best by the reward is kept. Default: 4.", DefaultValueFactory = _ => 4 };
        var reward = new Option<string>("--reward") { Description = "The reward, as for rlhf. Default: shakespeare.", DefaultValueFactory = _ => RewardParser.Shakespeare };
        var lexicon = new Option<string?>("--lexicon") { Description = "CMU Pronouncing Dictionary for the shakespeare reward." };
        var prompts = new Option<string?>("--prompts") { Description = "A text file of prompts, as for rlhf (its held-out lines are used). Default: Tiny Shakespeare's held-out lines." };
        var responseTokens = Cli.OptionalInt("--response-tokens", "New tokens per response. Default: 48.");
        var evalPrompts = Cli.OptionalInt("--eval-prompts", "Held-out prompts to score. Default: 64.");
        var temperature = Cli.OptionalDouble("--temperature", "Sampling temperature. Default: 1.");
        var seed = Cli.OptionalLong("--seed", "Sampling seed. Default: 1337.");
        var json = new Option<bool>("--json") { Description = "End with one JSON object line: n, kl, reward_best, reward_best_stderr, reward_mean, prompts." };
        var command = new Command("best-of-n", "Score best-of-n sampling with a reward: the no-training baseline for rlhf, at KL log n - (n-1)/n.")
            { checkpoint, n, reward, lexicon, prompts, responseTokens, evalPrompts, temperature, seed, json };
        command.SetAction(parse => Cli.Run(() =>
        {
            int samples = parse.GetValue(n);
            if (samples < 1) throw new CliException($"--n must be at least 1; got {samples}.", 2);
            int tokens = parse.GetValue(responseTokens) ?? 48, count = parse.GetValue(evalPrompts) ?? 64;
            if (tokens < 1) throw new CliException($"--response-tokens must be at least 1; got {tokens}.", 2);
            if (count < 1) throw new CliException($"--eval-prompts must be at least 1; got {count}.", 2);
            double temp = parse.GetValue(temperature) ?? 1.0;
            long firstSeed = parse.GetValue(seed) ?? 1337;
            SamplingOptions Sampling(long s) => new() { Temperature = temp, Seed = s, MaxNewTokens = tokens };
            if (Sampling(firstSeed).GetValidationErrors() is { Count: > 0 } bad) throw new CliException(string.Join(" ", bad.Select(p => p.Message)), 2);
            var rewardFunction = ParseReward(parse.GetValue(reward)!, parse.GetValue(lexicon));
            Cli.RequireTorch();
            var (model, tokenizer) = CheckpointLoader.Load(parse.GetValue(checkpoint)!);
            using (model)
            {
                var (_, heldOut, source) = Prompts(parse.GetValue(prompts), tokenizer, model.Options.ContextLength - tokens);
                if (heldOut.Count == 0) throw new CliException($"'{source}' has no held-out prompts (a prompts file needs at least ten lines).");
                heldOut = heldOut.Take(count).ToList();
                var sampler = new BestOfNSampler(model, tokenizer, rewardFunction);
                var best = new List<BestOfNPrompt>();
                // a few prompts per batch: the n samples of each share one KV-cache generation
                int chunk = Math.Max(1, 32 / samples);
                for (int start = 0; start < heldOut.Count; start += chunk)
                    best.AddRange(sampler.Sample(heldOut.Skip(start).Take(chunk).ToList(), samples, Sampling(firstSeed + start)).Prompts);
                var (mean, se, _) = RewardEvaluation.Of(best.Select(b => b.BestReward).ToList());
                double all = best.SelectMany(b => b.Rewards).Average();
                double kl = BestOfNSampler.KlDivergence(samples);
                foreach (var b in best.Take(3)) Console.WriteLine($"best of {samples} ({b.BestReward:F3}): {b.BestText.ReplaceLineEndings(" / ")}");
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"best-of-{samples} over {best.Count} held-out prompts from {source}: reward {mean:F4} ± {se:F4} (every sample: {all:F4}); KL to the model {kl:F4} nats"));
                if (parse.GetValue(json))
                    Console.WriteLine(JsonSerializer.Serialize(new { n = samples, kl, reward_best = mean, reward_best_stderr = Finite(se), reward_mean = all, prompts = best.Count }));
            }

            return 0;
        }));
        return command;
    }

    private static string Describe(RlhfProgress p)
    {
        var m = p.Metrics;
        return string.Create(CultureInfo.InvariantCulture,
            $"iteration {p.Iteration}/{p.Iterations}  reward {m[RlMetricNames.RewardMean]:F3}  kl {m[RlMetricNames.Kl]:F3}  beta {m[RlMetricNames.Beta]:G3}  {m[RlMetricNames.TokensPerSecond]:N0} tok/s");
    }

    /// <summary>
    /// Training and held-out prompts: the lines of <paramref name="file"/> (every fifth held out when there are at least
    /// ten), or lines of Tiny Shakespeare (training from its first 90%, held out from the rest); each prompt is a line
    /// and its newline, cut to its last <paramref name="limit"/> tokens' worth of whole lines.
    /// </summary>
    private static (List<IReadOnlyList<long>> Train, List<IReadOnlyList<long>> HeldOut, string Source) Prompts(string? file, ITextTokenizer tokenizer, int limit)
    {
        if (limit < 1) throw new CliException($"--response-tokens leaves no room for a prompt in the context.", 2);
        string source = file ?? TinyShakespeare.Locate();
        if (!File.Exists(source)) throw new CliException($"Prompts file '{source}' does not exist.");
        var lines = File.ReadAllLines(source).Select((text, number) => (Text: text.TrimEnd(), Number: number + 1)).Where(l => l.Text.Length > 0).ToList();
        List<IReadOnlyList<long>> Encode(IEnumerable<(string Text, int Number)> chosen) => chosen.Select(l =>
        {
            int[] ids;
            try
            {
                ids = tokenizer.Encode(l.Text + "\n");
            }
            catch (ArgumentException ex)
            {
                throw new CliException($"Prompt on line {l.Number} of '{source}' cannot be encoded by the checkpoint's {tokenizer.Name} tokenizer: {Cli.MessageOf(ex)}");
            }

            return ids.Length <= limit ? (IReadOnlyList<long>)ids.Select(i => (long)i).ToList() : null;
        }).OfType<IReadOnlyList<long>>().ToList();

        List<IReadOnlyList<long>> train, heldOut;
        if (file is null)
        {
            int split = (int)(lines.Count * 0.9);
            train = Encode(lines.Take(split));
            heldOut = Encode(lines.Skip(split));
        }
        else
        {
            bool hold = lines.Count >= 10;
            train = Encode(lines.Where((_, i) => !hold || i % 5 != 4));
            heldOut = hold ? Encode(lines.Where((_, i) => i % 5 == 4)) : [];
        }

        if (train.Count == 0) throw new CliException($"No prompt in '{source}' fits the context with the response ({limit} tokens at most).");
        return (train, heldOut, source);
    }

    private static RlhfOptions ReadConfig(string path)
    {
        var json = TrainConfig.ReadFile(path);
        try
        {
            return OptionsJson.Read<RlhfOptions>(json, $"--config '{path}'", OptionsJson.SnakeCase); // the same keys, checks and messages as yinghub train's trainer section
        }
        catch (InvalidDataException ex)
        {
            throw new CliException(ex.Message, 2);
        }
    }

    private static CompositeTracker CreateTracker(string output, TrackingSettings t)
    {
        try
        {
            return TrainingTrackers.Create(new TrackingOptions
            {
                RunDirectory = output + ".cache", Jsonl = true, TensorBoard = t.TensorBoard, MlflowTrackingUri = t.MlflowUri,
                RunName = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(output))), PlotInterval = t.PlotInterval,
                CurvePlots =
                [
                    new CurvePlot("reward.png", "Mean task reward of the rollouts", "reward", [RlMetricNames.RewardMean]),
                    new CurvePlot("kl.png", "Mean KL to the reference per sequence", "nats", [RlMetricNames.Kl]),
                    new CurvePlot("routing.png", "Routing change between rollout and update", "share of (token, layer)", [RlMetricNames.RoutingChange, RlMetricNames.RoutingChangeUsed]),
                ],
            });
        }
        catch (InvalidOperationException ex)
        {
            throw new CliException($"Tracking: {ex.Message}");
        }
    }

    /// <summary>A value for a JSON line: JSON has no NaN or infinity, so those are null.</summary>
    private static double? Finite(double? value) => value is { } v && double.IsFinite(v) ? v : null;

    private static string? NonEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;
}
