using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Checkpoints;

/// <summary>
/// A model checkpoint directory in the Hugging Face layout: <c>config.json</c> (the <see cref="MoeModelOptions"/>, with
/// HF key names) and <c>model.safetensors</c> (the state dict: weights and persistent buffers). Saving writes a new
/// directory beside the target and swaps it in, so a crash never leaves a half-written checkpoint. Every checkpoint
/// also holds <c>checksums.sha256</c>, the SHA-256 of each of its files in <c>sha256sum</c>'s format (so
/// <c>sha256sum -c checksums.sha256</c> checks it by hand); loading verifies the files it reads against it and refuses
/// weights that are not finite, so a corrupted file fails loudly instead of generating garbage. Checkpoints without
/// the file (written before it existed) still load.
/// </summary>
public static class MoeCheckpoint
{
    /// <summary>The options file name.</summary>
    public const string ConfigFile = "config.json";

    /// <summary>The weights file name.</summary>
    public const string WeightsFile = "model.safetensors";

    /// <summary>The checksum file name (lines of <c>{sha256 hex}  {relative path}</c>, as <c>sha256sum</c> writes them).</summary>
    public const string ChecksumFile = "checksums.sha256";

    private const string LibraryName = "YingHub.Moe";

    // Projection weights (attention, stacked FFN/expert) are input-major: (in, out), (n, in, out). Files of this library
    // without the key were written when they were (out, in), (n, out, in); loading transposes them, so older
    // checkpoints keep working.
    private const string LayoutKey = "weight_layout";
    private const string Layout = "in_out";
    private static readonly string[] ProjectionSuffixes = [".self_attn.qkv_proj.weight", ".self_attn.o_proj.weight"];

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    /// <summary>
    /// Saves <paramref name="model"/> to <paramref name="directory"/> (created or replaced). Extra files (e.g. a
    /// tokenizer) can be added by <paramref name="writeExtras"/>, which receives the staging directory; they are
    /// checksummed with the rest.
    /// </summary>
    public static void Save(MoeForCausalLM model, string directory, Action<string>? writeExtras = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(directory);
        AtomicDirectory.Replace(directory, staging =>
        {
            File.WriteAllText(Path.Combine(staging, ConfigFile), JsonSerializer.Serialize(model.Options, Json));
            var state = model.state_dict();
            Safetensors.Write(Path.Combine(staging, WeightsFile), state,
                new Dictionary<string, string> { ["format"] = "pt", ["library"] = LibraryName, [LayoutKey] = Layout });
            writeExtras?.Invoke(staging);
            WriteChecksums(staging);
        });
    }

    private static void WriteChecksums(string directory)
    {
        var lines = new StringBuilder();
        foreach (string file in Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories)
                     .Select(f => Path.GetRelativePath(directory, f).Replace('\\', '/'))
                     .Where(f => f != ChecksumFile).Order(StringComparer.Ordinal))
            lines.Append(Hash(Path.Combine(directory, file))).Append("  ").Append(file).Append('\n');
        string path = Path.Combine(directory, ChecksumFile);
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None);
        stream.Write(Encoding.UTF8.GetBytes(lines.ToString()));
        stream.Flush(flushToDisk: true);
    }

    private static string Hash(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    /// <summary>The recorded SHA-256 (lower-case hex) of each file of the checkpoint in <paramref name="directory"/>, by relative path; null when it has no checksum file.</summary>
    /// <exception cref="InvalidDataException">The checksum file is malformed.</exception>
    public static IReadOnlyDictionary<string, string>? ReadChecksums(string directory)
    {
        string path = Path.Combine(directory, ChecksumFile);
        if (!File.Exists(path)) return null;
        var sums = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string line in File.ReadAllLines(path).Where(l => l.Length > 0))
        {
            int split = line.IndexOf("  ", StringComparison.Ordinal);
            if (split != 64 || !line[..64].All(char.IsAsciiHexDigit))
                throw new InvalidDataException($"Checkpoint '{directory}': '{ChecksumFile}' has a malformed line '{line}'.");
            sums[line[(split + 2)..]] = line[..64].ToLowerInvariant();
        }

        return sums;
    }

    /// <summary>
    /// Checks <paramref name="files"/> (relative paths; null: every file the checksum file lists) of the checkpoint in
    /// <paramref name="directory"/> against their recorded SHA-256. A checkpoint without a checksum file passes (older
    /// ones have none), as does a file it does not list.
    /// </summary>
    /// <exception cref="InvalidDataException">A listed file is missing or its contents differ from its checksum; the message names it.</exception>
    public static void VerifyChecksums(string directory, IEnumerable<string>? files = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        if (ReadChecksums(directory) is not { } sums) return;
        foreach (string file in files ?? sums.Keys)
        {
            if (!sums.TryGetValue(file, out string? expected)) continue;
            string path = Path.Combine(directory, file);
            if (!File.Exists(path)) throw new InvalidDataException($"Checkpoint '{directory}' lacks '{file}', which its '{ChecksumFile}' lists.");
            if (Hash(path) != expected)
                throw new InvalidDataException($"Checkpoint '{directory}': '{file}' does not match its recorded SHA-256 (truncated or corrupted); nothing was loaded.");
        }
    }

    /// <summary>Reads the options of the checkpoint in <paramref name="directory"/>.</summary>
    /// <exception cref="FileNotFoundException">No checkpoint there.</exception>
    /// <exception cref="InvalidDataException">The options file is not valid.</exception>
    public static MoeModelOptions ReadOptions(string directory)
    {
        string path = Path.Combine(directory, ConfigFile);
        if (!File.Exists(path)) throw new FileNotFoundException($"No checkpoint in '{directory}': '{ConfigFile}' is missing.", path);
        try
        {
            return JsonSerializer.Deserialize<MoeModelOptions>(File.ReadAllText(path)) ?? throw new InvalidDataException($"'{path}' is empty.");
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"'{path}' is not a valid model configuration: {ex.Message}", ex);
        }
    }

    /// <summary>
    /// Builds the model saved in <paramref name="directory"/> and loads its weights (every tensor must match). The model
    /// is built without drawing initial weights, since every one of them is loaded.
    /// </summary>
    /// <param name="directory">The checkpoint directory.</param>
    /// <param name="verifyChecksums">Check <c>config.json</c> and <c>model.safetensors</c> against <c>checksums.sha256</c> (the weights are hashed as they are read, before anything is copied into the model; pass false to skip the hashing).</param>
    /// <exception cref="InvalidDataException">A file does not match its checksum, the weights do not match the configuration, or a weight is not finite; the message names the file or each tensor.</exception>
    public static MoeForCausalLM Load(string directory, bool verifyChecksums = true)
    {
        if (verifyChecksums) VerifyChecksums(directory, [ConfigFile]);
        var options = ReadOptions(directory);
        MoeForCausalLM model;
        using (WeightInit.Skip()) model = new MoeForCausalLM(options); // every weight is loaded below (strict): drawing them would be wasted
        try
        {
            LoadWeights(model, Path.Combine(directory, WeightsFile), strict: true, verifyChecksum: verifyChecksums);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Whether the weights file at <paramref name="path"/> stores projection weights input-major, as this version does
    /// (false only for a file this library wrote before the change; <see cref="LoadWeights"/> transposes those).
    /// </summary>
    public static bool HasCurrentWeightLayout(string path) => !HasEarlierLayout(Safetensors.ReadHeader(path).Metadata);

    private static bool HasEarlierLayout(IReadOnlyDictionary<string, string> metadata) =>
        metadata.GetValueOrDefault("library") == LibraryName && !metadata.ContainsKey(LayoutKey);

    /// <summary>
    /// Copies the tensors of a safetensors file into <paramref name="model"/> by name and reports what matched. With
    /// <paramref name="strict"/>, any missing, unexpected or mis-shaped tensor throws before anything is copied; a weight
    /// that is not finite always throws, naming it. With <paramref name="verifyChecksum"/>, the file is checked against the
    /// <c>checksums.sha256</c> of its directory, when there is one: hashed as it is read, before anything is copied.
    /// </summary>
    /// <exception cref="InvalidDataException">The file does not match its checksum, does not match the model (strict), or holds a NaN or infinite weight.</exception>
    public static WeightLoadReport LoadWeights(nn.Module model, string path, bool strict = true, bool verifyChecksum = true)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (!File.Exists(path)) throw new FileNotFoundException($"Weights file '{path}' does not exist.", path);
        string? expected = verifyChecksum ? ReadChecksums(Path.GetDirectoryName(Path.GetFullPath(path))!)?.GetValueOrDefault(Path.GetFileName(path)) : null;
        using var scope = torch.NewDisposeScope();
        using var hash = expected is null ? null : IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var file = Safetensors.Read(path, out var metadata, device: null, hash); // hashed while read: one pass over the file
        if (hash is not null && !string.Equals(Convert.ToHexStringLower(hash.GetHashAndReset()), expected, StringComparison.OrdinalIgnoreCase))
            throw new InvalidDataException($"Checkpoint '{Path.GetDirectoryName(Path.GetFullPath(path))}': '{Path.GetFileName(path)}' does not match its recorded SHA-256 (truncated or corrupted); nothing was loaded.");
        if (HasEarlierLayout(metadata))
        {
            // written before the input-major layout: the stacked (n, out, in) weights (the only 3-D tensors) and the attention projections
            file = file.ToDictionary(kv => kv.Key, kv =>
                kv.Value.dim() == 3 ? kv.Value.transpose(1, 2).contiguous()
                : ProjectionSuffixes.Any(s => kv.Key.EndsWith(s, StringComparison.Ordinal)) ? kv.Value.t().contiguous()
                : kv.Value);
        }

        return LoadState(model, file, path, strict);
    }

    /// <summary>
    /// Copies named tensors into <paramref name="model"/>'s state dict and reports what matched; with
    /// <paramref name="strict"/>, any missing, unexpected or mis-shaped tensor throws before anything is copied. A
    /// floating-point tensor holding NaN or an infinity throws (naming it) before anything is copied.
    /// </summary>
    /// <param name="model">The model to fill.</param>
    /// <param name="file">The tensors, by state-dict key.</param>
    /// <param name="source">Where they came from, for messages.</param>
    /// <param name="strict">Throw unless every key matches.</param>
    public static WeightLoadReport LoadState(nn.Module model, IReadOnlyDictionary<string, Tensor> file, string source, bool strict = true)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(file);
        var state = model.state_dict();
        var loaded = new List<string>();
        var mismatched = new List<(string, string, string)>();
        foreach (var (name, target) in state)
        {
            if (!file.TryGetValue(name, out var stored)) continue;
            if (!stored.shape.SequenceEqual(target.shape) || stored.dtype != target.dtype)
                mismatched.Add((name, Describe(target), Describe(stored)));
            else loaded.Add(name);
        }

        var report = new WeightLoadReport(loaded,
            state.Keys.Where(k => !file.ContainsKey(k)).ToList(),
            file.Keys.Where(k => !state.ContainsKey(k)).ToList(),
            mismatched);
        if (strict && !report.IsExact) throw new InvalidDataException($"Weights '{source}' do not match the model: {report}.");
        string[] nonFinite = loaded.Where(name => file[name].is_floating_point() && !IsFinite(file[name])).ToArray();
        if (nonFinite.Length > 0)
            throw new InvalidDataException($"Weights '{source}': {string.Join(", ", nonFinite.Select(n => $"'{n}'"))} hold NaN or infinite values; nothing was loaded.");

        using (torch.no_grad())
        {
            foreach (string name in loaded) state[name].copy_(file[name]);
        }

        return report;
    }

    private static bool IsFinite(Tensor t)
    {
        using var scope = torch.NewDisposeScope();
        return torch.isfinite(t).all().item<bool>();
    }

    private static string Describe(Tensor t) => $"{t.dtype} [{string.Join(", ", t.shape)}]";
}
