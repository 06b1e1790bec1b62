namespace YingHub.Moe.Training.Objectives;

/// <summary>One training sequence an objective made of a block of text.</summary>
/// <param name="Objective">The objective's name.</param>
/// <param name="Tokens">The sequence (at most the block plus its target, T + 1 tokens): the model reads all but the last and predicts each next one.</param>
/// <param name="TargetsFrom">The first index of <paramref name="Tokens"/> the loss trains on (1: every token after the first).</param>
/// <param name="AttentionPrefix">Leading tokens that attend to each other both ways (0: causal attention throughout).</param>
public sealed record ObjectiveExample(string Objective, long[] Tokens, int TargetsFrom, int AttentionPrefix);
