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

    /// <summary>
    /// Router parameters: everything under <c>block_sparse_moe.gate</c>, which holds the gate's <c>weight</c> and
    /// <c>bias</c> and, for the noisy router, its noise projection (<c>gate.noise.weight</c>, <c>gate.noise.bias</c>)
    /// and learnable temperature (<c>gate.noise_temperature</c>).
    /// </summary>
    public static IReadOnlyList<string> Router { get; } = ["block_sparse_moe.gate"];

    /// <summary>
    /// Expert parameters: the simple routed experts (<c>block_sparse_moe.experts</c>), the deep ones
    /// (<c>block_sparse_moe.deep_experts</c>) and the shared expert (<c>block_sparse_moe.shared_expert</c>). The
    /// dense FFN of non-MoE layers (<c>mlp</c>) is not an expert.
    /// </summary>
    public static IReadOnlyList<string> Experts { get; } =
        ["block_sparse_moe.experts", "block_sparse_moe.deep_experts", "block_sparse_moe.shared_expert"];

    /// <summary>Embeddings, which get no weight decay.</summary>
    public static IReadOnlyList<string> Embeddings { get; } = ["embed_tokens", "embed_positions"];

    /// <summary>Normalisation layers (<c>input_layernorm</c>, <c>post_attention_layernorm</c>, final <c>norm</c>), which get no weight decay.</summary>
    public static IReadOnlyList<string> Norms { get; } = ["norm"];

    /// <summary>
    /// True when <paramref name="name"/> is a bias: its last segment is <c>bias</c>. Shape cannot tell: stacked expert
    /// and FFN biases are (count, out), two dimensions like a matrix.
    /// </summary>
    /// <param name="name">A parameter name.</param>
    public static bool IsBias(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name == "bias" || name.EndsWith(".bias", StringComparison.Ordinal);
    }

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
