namespace YingHub.Moe.Training.Optimization;

/// <summary>
/// Name fragments of the project's state-dict vocabulary (see STYLE.md, "Naming") used to classify parameters. A name
/// matches a pattern when it contains it (ordinal, case-sensitive).
/// </summary>
public static class ParameterNamePatterns
{
    /// <summary>The router group's name.</summary>
    public const string RouterGroup = "router";

    /// <summary>The expert group's name.</summary>
    public const string ExpertGroup = "experts";

    /// <summary>The name of the group of every parameter no rule matches.</summary>
    public const string OtherGroup = "other";

    /// <summary>Router parameters: the gate and the noisy router's noise projection.</summary>
    public static IReadOnlyList<string> Router { get; } = ["block_sparse_moe.gate", "block_sparse_moe.noise"];

    /// <summary>Expert parameters: routed experts and the shared expert.</summary>
    public static IReadOnlyList<string> Experts { get; } = ["block_sparse_moe.experts", "shared_expert"];

    /// <summary>Embeddings, which get no weight decay.</summary>
    public static IReadOnlyList<string> Embeddings { get; } = ["embed_tokens", "embed_positions"];

    /// <summary>Normalisation layers (<c>input_layernorm</c>, <c>post_attention_layernorm</c>, final <c>norm</c>), which get no weight decay.</summary>
    public static IReadOnlyList<string> Norms { get; } = ["norm"];

    /// <summary>True when <paramref name="name"/> contains any of <paramref name="patterns"/>.</summary>
    /// <param name="name">A parameter name.</param>
    /// <param name="patterns">Name fragments.</param>
    public static bool MatchesAny(string name, IEnumerable<string> patterns)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(patterns);
        return patterns.Any(p => name.Contains(p, StringComparison.Ordinal));
    }
}
