using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using TorchSharp;
using YingHub.Moe.Core.Checkpoints;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Training.Freezing;
using YingHub.Moe.Training.Optimization;

namespace YingHub.Moe.Training.Checkpointing;

/// <summary>
/// Resumable checkpoints of a run in one directory: the model (<c>config.json</c>, <c>model.safetensors</c>), the
/// optimizer state, the torch generator state and a <see cref="TrainingState"/>, all covered by
/// <c>checksums.sha256</c>. A save writes a new directory and swaps it in (<see cref="MoeCheckpoint.Save"/>), so the
/// previous checkpoint stays until the new one is complete; with <see cref="Keep"/> &gt; 1 the earlier ones move to
/// <c>{directory}.history/step-NNNNNNNN</c>. <see cref="FindNewestComplete"/> finds the newest checkpoint that
/// passes its checksums wherever a crash left it (the directory, the history, or the previous checkpoint set aside
/// during a swap), which is what a resume should load.
/// </summary>
public sealed class CheckpointStore
{
    /// <summary>The optimizer state file.</summary>
    public const string OptimizerFile = "optimizer.bin";

    /// <summary>The CPU generator state file.</summary>
    public const string RngFile = "rng_state.bin";

    /// <summary>The <see cref="TrainingState"/> file.</summary>
    public const string StateFile = "trainer_state.json";

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true, NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    // options a resumed run may differ in: the router's k (changed at run time, restored from the state) and the
    // initialisation (it only shapes new weights)
    private static readonly HashSet<string> ResumableOptionChanges = ["num_experts_per_tok", "init_scheme", "initializer_range", "residual_init"];

    /// <summary>A store writing to <paramref name="directory"/>, keeping <paramref name="keep"/> checkpoints.</summary>
    /// <exception cref="ArgumentException">An empty directory, or <paramref name="keep"/> outside [1, 1000].</exception>
    public CheckpointStore(string directory, int keep = 1)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        if (keep is < 1 or > 1000) throw new ArgumentException($"keep = {keep} is outside the allowed range [1, 1000].", nameof(keep));
        Directory = Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory));
        Keep = keep;
    }

    /// <summary>The checkpoint directory (full path).</summary>
    public string Directory { get; }

    /// <summary>Checkpoints kept: the latest in <see cref="Directory"/>, the others in its history.</summary>
    public int Keep { get; }

    /// <summary>
    /// Saves <paramref name="model"/>, <paramref name="optimizer"/>'s state, the torch CPU generator state and
    /// <paramref name="state"/> (with the loss scaler's state and the frozen parameter names filled in);
    /// <paramref name="writeExtras"/> adds files (a tokenizer, best weights) to the staging directory.
    /// </summary>
    public void Save(MoeForCausalLM model, OptimizerStep optimizer, TrainingState state, Action<string>? writeExtras = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(optimizer);
        ArgumentNullException.ThrowIfNull(state);
        if (Keep > 1) ArchivePrevious(state.Step);
        var full = state with { LossScaler = optimizer.LossScaler?.State, Frozen = ParameterFreezing.FrozenNames(model), Sha256 = null };
        MoeCheckpoint.Save(model, Directory, staging =>
        {
            optimizer.SaveState(Path.Combine(staging, OptimizerFile));
            using (var rng = torch.get_rng_state()) File.WriteAllBytes(Path.Combine(staging, RngFile), rng.bytes.ToArray());
            writeExtras?.Invoke(staging);
            File.WriteAllText(Path.Combine(staging, StateFile), JsonSerializer.Serialize(full, Json));
        });
        RemoveLeftovers();
    }

    /// <summary>
    /// Continues from the checkpoint in <paramref name="checkpoint"/> (a directory, e.g. from
    /// <see cref="FindNewestComplete"/>): checks every file's checksum, the weight layout, the model options and the
    /// frozen parameters before anything is loaded, then loads the weights, the optimizer state, the loss scaler and
    /// the CPU generator state, and returns the <see cref="TrainingState"/> for the rest (samplers, schedules, ...).
    /// </summary>
    /// <exception cref="FileNotFoundException">No training state there.</exception>
    /// <exception cref="InvalidDataException">A file is missing, truncated or corrupted, or was written by an earlier weight layout.</exception>
    /// <exception cref="ArgumentException">The model's options or frozen parameters differ from the run's; the message lists each difference.</exception>
    public static TrainingState Load(string checkpoint, MoeForCausalLM model, OptimizerStep optimizer)
    {
        ArgumentException.ThrowIfNullOrEmpty(checkpoint);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(optimizer);
        var state = ReadState(checkpoint);
        VerifyFiles(checkpoint, state);
        if (!MoeCheckpoint.HasCurrentWeightLayout(Path.Combine(checkpoint, MoeCheckpoint.WeightsFile)))
        {
            throw new InvalidDataException($"Checkpoint '{checkpoint}' was written by an earlier version that stored projection weights (out, in): " +
                "its weights load (transposed), but its optimizer state cannot be resumed; nothing was loaded. Start a new run from its weights instead (fine-tuning, e.g. yinghub train --init-from).");
        }

        if (OptionDifferences(model.Options, MoeCheckpoint.ReadOptions(checkpoint)) is { Count: > 0 } differences)
        {
            throw new ArgumentException($"Checkpoint '{checkpoint}' was trained with other model options than this model's: {string.Join("; ", differences)}; " +
                "nothing was loaded. Build the model with the run's options (its config.json, MoeCheckpoint.ReadOptions) to resume it.", nameof(model));
        }

        var frozen = ParameterFreezing.FrozenNames(model);
        if (state.Frozen is { } saved && !saved.SequenceEqual(frozen))
        {
            throw new ArgumentException($"Checkpoint '{checkpoint}' froze [{string.Join(", ", saved)}], this model freezes [{string.Join(", ", frozen)}]; " +
                "nothing was loaded. Freeze the same parameters (TrainingState.Frozen, ParameterFreezing.FreezeNames) to resume it.", nameof(model));
        }

        MoeCheckpoint.LoadWeights(model, Path.Combine(checkpoint, MoeCheckpoint.WeightsFile), strict: true, verifyChecksum: false);
        optimizer.LoadState(Path.Combine(checkpoint, OptimizerFile));
        if (state.LossScaler is { } scaler) optimizer.LossScaler?.Restore(scaler);
        using (var rng = torch.get_rng_state())
        {
            rng.bytes = File.ReadAllBytes(Path.Combine(checkpoint, RngFile));
            torch.set_rng_state(rng);
        }

        return state;
    }

    /// <summary>The <see cref="TrainingState"/> of the checkpoint in <paramref name="checkpoint"/> (no checksum check).</summary>
    /// <exception cref="FileNotFoundException">It has no state file.</exception>
    /// <exception cref="InvalidDataException">The state file is not valid.</exception>
    public static TrainingState ReadState(string checkpoint)
    {
        string path = Path.Combine(checkpoint, StateFile);
        if (!File.Exists(path)) throw new FileNotFoundException($"'{checkpoint}' is not a resumable checkpoint: '{StateFile}' is missing.", path);
        try
        {
            return JsonSerializer.Deserialize<TrainingState>(File.ReadAllText(path), Json) ?? throw new InvalidDataException($"'{path}' is empty.");
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"'{path}' is corrupted: {ex.Message}", ex);
        }
    }

    /// <summary>
    /// The newest complete checkpoint of the run saved to <paramref name="directory"/>: among the directory, its
    /// history and any checkpoint a crash left beside it mid-save, the one at the highest step whose files all match
    /// their checksums (the directory itself on ties).
    /// </summary>
    /// <exception cref="InvalidDataException">There is none; the message says why each candidate was refused.</exception>
    public static string FindNewestComplete(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        string target = Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory));
        string parent = Path.GetDirectoryName(target)!;
        string name = Path.GetFileName(target);
        var candidates = new List<string> { target };
        string history = target + ".history";
        if (System.IO.Directory.Exists(history)) candidates.AddRange(System.IO.Directory.GetDirectories(history, "step-*").Order(StringComparer.Ordinal).Reverse());
        if (System.IO.Directory.Exists(parent)) candidates.AddRange(Leftovers(parent, name));
        string? best = null;
        long bestStep = -1;
        var refused = new List<string>();
        foreach (string candidate in candidates.Where(System.IO.Directory.Exists))
        {
            try
            {
                var state = ReadState(candidate);
                VerifyFiles(candidate, state);
                if (state.Step > bestStep) (best, bestStep) = (candidate, state.Step);
            }
            catch (Exception ex) when (ex is IOException or InvalidDataException or UnauthorizedAccessException)
            {
                refused.Add(ex.Message);
            }
        }

        return best ?? throw new InvalidDataException(refused.Count == 0
            ? $"There is no checkpoint of a run in '{directory}'."
            : $"No complete checkpoint of the run in '{directory}': {string.Join(" ", refused)}");
    }

    /// <summary>Each option (by its config.json name) whose value differs between <paramref name="model"/> and <paramref name="saved"/>, but the run-time k and the initialisation.</summary>
    public static IReadOnlyList<string> OptionDifferences(MoeModelOptions model, MoeModelOptions saved)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(saved);
        var ours = JsonSerializer.SerializeToElement(model);
        var theirs = JsonSerializer.SerializeToElement(saved);
        return ours.EnumerateObject()
            .Where(p => !ResumableOptionChanges.Contains(p.Name))
            .Select(p => (p.Name, Model: p.Value.GetRawText(), Saved: theirs.TryGetProperty(p.Name, out var v) ? v.GetRawText() : "(absent)"))
            .Where(d => d.Model != d.Saved)
            .Select(d => $"{d.Name} {d.Saved} in the checkpoint, {d.Model} in this model")
            .ToList();
    }

    private static void VerifyFiles(string checkpoint, TrainingState state)
    {
        if (MoeCheckpoint.ReadChecksums(checkpoint) is null && state.Sha256 is null)
            throw new InvalidDataException($"Checkpoint '{checkpoint}' has no '{MoeCheckpoint.ChecksumFile}': it was not completely written.");
        MoeCheckpoint.VerifyChecksums(checkpoint);
        foreach (var (file, hash) in state.Sha256 ?? []) // checkpoints written before checksums.sha256
        {
            string path = Path.Combine(checkpoint, file);
            if (!File.Exists(path)) throw new InvalidDataException($"Checkpoint '{checkpoint}' lacks '{file}'.");
            if (!string.Equals(Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path))), hash, StringComparison.OrdinalIgnoreCase))
                throw new InvalidDataException($"Checkpoint '{checkpoint}': '{file}' does not match its recorded SHA-256 (truncated or corrupted); nothing was loaded.");
        }
    }

    // MoeCheckpoint.Save stages into ".{name}.{guid}.tmp" and sets the previous checkpoint aside as ".{name}.{guid}.old"
    private static IEnumerable<string> Leftovers(string parent, string name)
    {
        var pattern = new Regex($@"^\.{Regex.Escape(name)}\.[0-9a-f]{{32}}\.(tmp|old)$", RegexOptions.CultureInvariant);
        return System.IO.Directory.GetDirectories(parent, $".{name}.*").Where(d => pattern.IsMatch(Path.GetFileName(d)));
    }

    /// <summary>Deletes what a killed save left beside the directory (now that a newer checkpoint is complete).</summary>
    private void RemoveLeftovers()
    {
        foreach (string leftover in Leftovers(Path.GetDirectoryName(Directory)!, Path.GetFileName(Directory)))
        {
            try
            {
                System.IO.Directory.Delete(leftover, recursive: true);
            }
            catch (IOException)
            {
                // another process's save in progress, or already gone: not ours to insist on
            }
        }
    }

    /// <summary>
    /// Moves the checkpoint in <see cref="Directory"/> (if it is one, at another step than <paramref name="step"/>) to
    /// <c>{directory}.history/step-N</c> (a rename: nothing is copied) and deletes the oldest there beyond Keep − 1.
    /// </summary>
    private void ArchivePrevious(long step)
    {
        if (!File.Exists(Path.Combine(Directory, StateFile))) return;
        long previous;
        try
        {
            previous = ReadState(Directory).Step;
        }
        catch (InvalidDataException)
        {
            return; // not ours to archive: MoeCheckpoint.Save replaces it
        }

        if (previous < 0 || previous == step) return;
        string history = Directory + ".history";
        System.IO.Directory.CreateDirectory(history);
        string target = Path.Combine(history, $"step-{previous:D8}");
        if (System.IO.Directory.Exists(target)) System.IO.Directory.Delete(target, recursive: true);
        System.IO.Directory.Move(Directory, target);
        foreach (string old in System.IO.Directory.GetDirectories(history, "step-*").Order(StringComparer.Ordinal).SkipLast(Keep - 1))
            System.IO.Directory.Delete(old, recursive: true);
    }
}
