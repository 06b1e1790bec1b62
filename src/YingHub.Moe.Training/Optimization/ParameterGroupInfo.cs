namespace YingHub.Moe.Training.Optimization;

/// <summary>A description of one optimizer parameter group, for logging and for the learning-rate applier.</summary>
/// <param name="Name">The group's name: <c>decay</c>, <c>no_decay</c>, <c>router_decay</c>, <c>router_no_decay</c>, or <c>{rule}_decay</c> / <c>{rule}_no_decay</c> of a <see cref="AdamWGroupOptions.LearningRateGroups"/> rule.</param>
/// <param name="WeightDecay">The group's decoupled weight decay.</param>
/// <param name="LearningRateMultiplier">The group's multiplier of the scheduled learning rate.</param>
/// <param name="ParameterNames">The names of the group's parameters, in order.</param>
/// <param name="ElementCount">The total number of elements of the group's parameters.</param>
public sealed record ParameterGroupInfo(
    string Name, double WeightDecay, double LearningRateMultiplier, IReadOnlyList<string> ParameterNames, long ElementCount);
