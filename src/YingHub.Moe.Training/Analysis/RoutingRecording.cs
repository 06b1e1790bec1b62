namespace YingHub.Moe.Training.Analysis;

/// <summary>
/// The routing of one MoE layer over the N recorded tokens of a <see cref="RoutingRecording"/>, flattened token-major:
/// entry <c>i·k + j</c> is token i's j-th choice (best first).
/// </summary>
/// <param name="Layer">Decoder layer index.</param>
/// <param name="Experts">Chosen experts (N·k), each in [0, E).</param>
/// <param name="Weights">Their gate weights (N·k).</param>
/// <param name="Dropped">Whether expert capacity dropped the assignment (N·k); all false without capacity.</param>
public sealed record LayerRoutingRecord(int Layer, int[] Experts, float[] Weights, bool[] Dropped);

/// <summary>
/// Routing decisions recorded while a model ran over a corpus (<see cref="RoutingRecorder"/>), or built by hand: per
/// token its id and position in its block, and per MoE layer the chosen experts, gate weights and drops. The input of
/// the pure functions of <see cref="RoutingStatistics"/>.
/// </summary>
public sealed class RoutingRecording
{
    /// <summary>Checks that every array has its documented length and every expert and position is in range.</summary>
    /// <param name="numExperts">E, at least 1.</param>
    /// <param name="topK">k, in [1, E].</param>
    /// <param name="blockLength">T, the length of the blocks the tokens came in (positions are in [0, T)).</param>
    /// <param name="tokenIds">Token id of each recorded token (N).</param>
    /// <param name="positions">Position of each token in its block (N), in [0, T).</param>
    /// <param name="layers">One record per MoE layer, each with N·k entries.</param>
    /// <exception cref="ArgumentException">A length, expert or position is out of range; the message names it.</exception>
    public RoutingRecording(int numExperts, int topK, int blockLength, long[] tokenIds, int[] positions, IReadOnlyList<LayerRoutingRecord> layers)
    {
        ArgumentNullException.ThrowIfNull(tokenIds);
        ArgumentNullException.ThrowIfNull(positions);
        ArgumentNullException.ThrowIfNull(layers);
        if (numExperts < 1) throw new ArgumentOutOfRangeException(nameof(numExperts), numExperts, "numExperts must be at least 1.");
        if (topK < 1 || topK > numExperts) throw new ArgumentOutOfRangeException(nameof(topK), topK, $"topK must be in [1, {numExperts}].");
        if (blockLength < 1) throw new ArgumentOutOfRangeException(nameof(blockLength), blockLength, "blockLength must be at least 1.");
        if (positions.Length != tokenIds.Length)
            throw new ArgumentException($"positions has {positions.Length} entries; tokenIds has {tokenIds.Length} (one per token).", nameof(positions));
        int bad = Array.FindIndex(positions, p => p < 0 || p >= blockLength);
        if (bad >= 0) throw new ArgumentException($"positions[{bad}] = {positions[bad]} is outside [0, {blockLength}).", nameof(positions));
        long entries = (long)tokenIds.Length * topK;
        foreach (var layer in layers)
        {
            ArgumentNullException.ThrowIfNull(layer, nameof(layers));
            if (layer.Experts.Length != entries || layer.Weights.Length != entries || layer.Dropped.Length != entries)
                throw new ArgumentException($"Layer {layer.Layer}: Experts, Weights and Dropped have {layer.Experts.Length}, {layer.Weights.Length} and {layer.Dropped.Length} entries; N·k = {entries}.", nameof(layers));
            int e = Array.FindIndex(layer.Experts, x => x < 0 || x >= numExperts);
            if (e >= 0) throw new ArgumentException($"Layer {layer.Layer}: Experts[{e}] = {layer.Experts[e]} is outside [0, {numExperts}).", nameof(layers));
        }

        NumExperts = numExperts;
        TopK = topK;
        BlockLength = blockLength;
        TokenIds = tokenIds;
        Positions = positions;
        Layers = layers;
    }

    /// <summary>E.</summary>
    public int NumExperts { get; }

    /// <summary>k.</summary>
    public int TopK { get; }

    /// <summary>T: the block length; positions are in [0, T).</summary>
    public int BlockLength { get; }

    /// <summary>N: the number of recorded tokens.</summary>
    public int Count => TokenIds.Length;

    /// <summary>Token id of each recorded token (N).</summary>
    public long[] TokenIds { get; }

    /// <summary>Position of each token in its block (N).</summary>
    public int[] Positions { get; }

    /// <summary>One record per MoE layer, in layer order.</summary>
    public IReadOnlyList<LayerRoutingRecord> Layers { get; }

    /// <summary>Each token's first (highest-gate) expert at MoE layer <paramref name="layer"/> (an index into <see cref="Layers"/>): (N).</summary>
    public int[] TopOne(int layer)
    {
        var experts = Layers[layer].Experts;
        var top = new int[Count];
        for (int i = 0; i < top.Length; i++) top[i] = experts[i * TopK];
        return top;
    }
}
