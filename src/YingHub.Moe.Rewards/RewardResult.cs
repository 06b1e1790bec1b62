namespace YingHub.Moe.Rewards;

/// <summary>The reward of one text.</summary>
/// <param name="Total">The weighted sum: Σ weight × score − Σ weight × penalty over <paramref name="Components"/>.</param>
/// <param name="Components">
/// Every evaluated component by name (see <see cref="RewardComponentNames"/>), each normalised to 0..1 before
/// weighting: scores count for the text, penalties (names ending in <c>_penalty</c>) against it.
/// </param>
public sealed record RewardResult(double Total, IReadOnlyDictionary<string, double> Components);
