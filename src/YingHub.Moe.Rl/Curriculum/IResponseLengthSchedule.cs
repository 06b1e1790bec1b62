namespace YingHub.Moe.Rl.Curriculum;

/// <summary>How many new tokens each response gets at an RL iteration: a curriculum from short to long responses.</summary>
public interface IResponseLengthSchedule
{
    /// <summary>The response length at <paramref name="iteration"/> (0-based), ≥ 1.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="iteration"/> is negative.</exception>
    int LengthAt(long iteration);
}
