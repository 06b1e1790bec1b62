using System.Reflection;
using System.Text.Json;

namespace YingHub.Moe.Core.Configuration;

/// <summary>
/// Named starting points for <see cref="MoeModelOptions"/>, shipped as embedded JSON files that name their source:
/// <c>tiny</c> (trains on a CPU in minutes), <c>makemoe</c> (makeMoE's shape with the library's improvements),
/// <c>yinghub-v2</c>, <c>makemoe-exact</c> (makeMoE's forward and training step as written, quirks included, to
/// compare with its own code), and <c>mixtral</c> (Hugging Face's <c>MixtralForCausalLM</c> at a CPU size, exportable with
/// <see cref="Interop.MixtralExport"/>). docs/presets.md tables each preset's choices against its source.
/// </summary>
public static class MoePresets
{
    private const string ResourcePrefix = "YingHub.Moe.Core.Presets.";

    /// <summary>The preset names.</summary>
    public static IReadOnlyList<string> Names { get; } = ["tiny", "makemoe", "yinghub-v2", "makemoe-exact", "mixtral"];

    /// <summary>A fresh copy of the options of preset <paramref name="name"/> (case-insensitive).</summary>
    /// <exception cref="ArgumentException">No preset has that name; the message lists the names.</exception>
    public static MoeModelOptions Get(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        string? known = Names.FirstOrDefault(n => string.Equals(n, name, StringComparison.OrdinalIgnoreCase));
        if (known is null) throw new ArgumentException($"Unknown preset '{name}'; the presets are {string.Join(", ", Names)}.", nameof(name));
        using Stream stream = typeof(MoePresets).Assembly.GetManifestResourceStream(ResourcePrefix + known + ".json")
            ?? throw new InvalidOperationException($"The preset resource '{known}.json' is missing from {typeof(MoePresets).Assembly.GetName().Name}.");
        return JsonSerializer.Deserialize<MoeModelOptions>(stream)
            ?? throw new InvalidOperationException($"The preset resource '{known}.json' is empty.");
    }
}
