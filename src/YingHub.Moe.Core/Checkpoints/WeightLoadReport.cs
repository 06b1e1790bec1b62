namespace YingHub.Moe.Core.Checkpoints;

/// <summary>How a set of named tensors matched a model's state dict.</summary>
/// <param name="Loaded">Names copied into the model.</param>
/// <param name="Missing">Model tensors the file did not have (left as they were).</param>
/// <param name="Unexpected">File tensors the model does not have (ignored).</param>
/// <param name="Mismatched">Names present in both with different shapes or dtypes (left as they were), with both descriptions.</param>
public sealed record WeightLoadReport(
    IReadOnlyList<string> Loaded,
    IReadOnlyList<string> Missing,
    IReadOnlyList<string> Unexpected,
    IReadOnlyList<(string Name, string Expected, string Found)> Mismatched)
{
    /// <summary>Whether every model tensor was loaded and nothing was left over.</summary>
    public bool IsExact => Missing.Count == 0 && Unexpected.Count == 0 && Mismatched.Count == 0;

    /// <inheritdoc />
    public override string ToString()
    {
        var parts = new List<string> { $"{Loaded.Count} loaded" };
        if (Missing.Count > 0) parts.Add($"missing: {string.Join(", ", Missing)}");
        if (Unexpected.Count > 0) parts.Add($"unexpected: {string.Join(", ", Unexpected)}");
        if (Mismatched.Count > 0) parts.Add($"mis-shaped: {string.Join(", ", Mismatched.Select(m => $"{m.Name} (model {m.Expected}, file {m.Found})"))}");
        return string.Join("; ", parts);
    }
}
