namespace YingHub.Moe.Training.Optimization;

/// <summary>One clipping group: the parameters whose names contain any of <see cref="NameContains"/>, and their max norm.</summary>
public sealed class GradientClipGroup
{
    /// <summary>The group's name, used in logs (e.g. <c>router</c>); unique and not <see cref="ParameterNamePatterns.OtherGroup"/>.</summary>
    public string Name { get; set; } = string.Empty;

    /// <summary>Name fragments; a parameter belongs to the first group (in list order) one of whose fragments it contains.</summary>
    public List<string> NameContains { get; set; } = [];

    /// <summary>The group's max L2 gradient norm; &gt; 0 (positive infinity disables the group clip).</summary>
    public double MaxNorm { get; set; } = 1.0;
}
