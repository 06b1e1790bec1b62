using System.Globalization;
using System.Text.RegularExpressions;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Freezing;

/// <summary>
/// Freezes parameters (<c>requires_grad = false</c>) by part or by name pattern. A frozen parameter gets no gradient,
/// so <see cref="Optimization.GroupedAdamW"/> leaves it out: no optimizer state, no weight decay, no update; it stays
/// bit-identical through training. A pattern is one of
/// <list type="bullet">
/// <item><c>embeddings</c>: <c>embed_tokens</c> and <c>embed_positions</c>;</item>
/// <item><c>blocks:N</c>: every parameter of the first N decoder layers (<c>layers.0</c> .. <c>layers.N-1</c>);</item>
/// <item><c>attention</c>: every layer's <c>self_attn</c>;</item>
/// <item><c>routers</c>: every MoE layer's router (<c>block_sparse_moe.gate</c>, <c>block_sparse_moe.noise</c>);</item>
/// <item><c>experts</c>: the routed experts and the shared expert;</item>
/// <item><c>lm_head</c>: the output projection;</item>
/// <item>otherwise a glob over state-dict names, <c>*</c> matching any run of characters (<c>layers.1.*</c>,
/// <c>*.input_layernorm.*</c>, <c>norm.weight</c>).</item>
/// </list>
/// Tied embeddings (<c>tie_word_embeddings</c>): the LM head is <c>embed_tokens.weight</c> itself (one tensor), so
/// freezing <c>lm_head</c> freezes the token embeddings and freezing <c>embeddings</c> freezes the head; either name
/// reports <c>embed_tokens.weight</c>.
/// </summary>
public static class ParameterFreezing
{
    /// <summary>The part names (besides <c>blocks:N</c> and globs).</summary>
    public static IReadOnlyList<string> Parts { get; } = ["embeddings", "blocks:N", "attention", "routers", "experts", "lm_head"];

    /// <summary>The parameter names of <paramref name="model"/> that <paramref name="patterns"/> select (in the model's order).</summary>
    /// <exception cref="ArgumentException">A pattern is empty, malformed (<c>blocks:</c> without a count ≥ 1) or selects nothing; the message lists the parts.</exception>
    public static IReadOnlyList<string> Select(nn.Module model, IEnumerable<string> patterns)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(patterns);
        var named = model.named_parameters().ToList();
        bool tiedHead = !named.Any(p => p.name.StartsWith("lm_head.", StringComparison.Ordinal));
        var selected = new HashSet<string>(StringComparer.Ordinal);
        foreach (string pattern in patterns)
        {
            var match = Matcher(pattern, tiedHead);
            string[] hits = named.Where(p => match(p.name)).Select(p => p.name).ToArray();
            if (hits.Length == 0)
                throw new ArgumentException($"Freeze pattern '{pattern}' selects no parameter; give a part ({string.Join(", ", Parts)}) or a glob over parameter names (e.g. 'layers.0.*').", nameof(patterns));
            selected.UnionWith(hits);
        }

        return named.Select(p => p.name).Where(selected.Contains).ToArray();
    }

    /// <summary>Freezes the parameters <paramref name="patterns"/> select and returns their names.</summary>
    /// <exception cref="ArgumentException">See <see cref="Select"/>.</exception>
    public static IReadOnlyList<string> Freeze(nn.Module model, IEnumerable<string> patterns)
    {
        var names = Select(model, patterns);
        FreezeNames(model, names);
        return names;
    }

    /// <summary>Freezes the parameters named <paramref name="names"/> exactly (e.g. the list a checkpoint recorded).</summary>
    /// <exception cref="ArgumentException">A name is not a parameter of <paramref name="model"/>.</exception>
    public static void FreezeNames(nn.Module model, IEnumerable<string> names)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(names);
        var byName = model.named_parameters().ToDictionary(p => p.name, p => p.parameter, StringComparer.Ordinal);
        foreach (string name in names)
        {
            if (!byName.TryGetValue(name, out Parameter? p)) throw new ArgumentException($"'{name}' is not a parameter of the model.", nameof(names));
            p.requires_grad = false;
        }
    }

    /// <summary>The names of <paramref name="model"/>'s parameters with <c>requires_grad = false</c>, in the model's order.</summary>
    public static IReadOnlyList<string> FrozenNames(nn.Module model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model.named_parameters().Where(p => !p.parameter.requires_grad).Select(p => p.name).ToArray();
    }

    private static Func<string, bool> Matcher(string pattern, bool tiedHead)
    {
        if (string.IsNullOrWhiteSpace(pattern)) throw new ArgumentException("A freeze pattern is empty.", nameof(pattern));
        static bool Has(string name, params string[] fragments) => fragments.Any(f => name.Contains(f, StringComparison.Ordinal));
        switch (pattern)
        {
            case "embeddings": return n => n.StartsWith("embed_tokens.", StringComparison.Ordinal) || n.StartsWith("embed_positions.", StringComparison.Ordinal);
            case "attention": return n => Has(n, ".self_attn.");
            case "routers": return n => Has(n, "block_sparse_moe.gate", "block_sparse_moe.noise");
            case "experts": return n => Has(n, "block_sparse_moe.experts", "shared_expert");
            case "lm_head": return n => n.StartsWith("lm_head.", StringComparison.Ordinal) || (tiedHead && n == "embed_tokens.weight");
        }

        if (pattern.StartsWith("blocks:", StringComparison.Ordinal))
        {
            if (!int.TryParse(pattern.AsSpan(7), NumberStyles.None, CultureInfo.InvariantCulture, out int count) || count < 1)
                throw new ArgumentException($"Freeze pattern '{pattern}': blocks:N needs a whole number of layers N >= 1.", nameof(pattern));
            var layer = new Regex(@"^layers\.(\d+)\.", RegexOptions.CultureInvariant);
            return n => layer.Match(n) is { Success: true } m && int.Parse(m.Groups[1].ValueSpan, CultureInfo.InvariantCulture) < count;
        }

        var glob = new Regex("^" + string.Join(".*", pattern.Split('*').Select(Regex.Escape)) + "$", RegexOptions.CultureInvariant);
        return glob.IsMatch;
    }
}
