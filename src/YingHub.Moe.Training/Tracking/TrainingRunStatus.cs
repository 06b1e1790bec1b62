namespace YingHub.Moe.Training.Tracking;

/// <summary>How a training run ended (MLflow's terminal run statuses).</summary>
public enum TrainingRunStatus
{
    /// <summary>The run completed normally (MLflow <c>FINISHED</c>).</summary>
    Finished,

    /// <summary>The run stopped on an error (MLflow <c>FAILED</c>).</summary>
    Failed,

    /// <summary>The run was stopped by the user, e.g. cancelled (MLflow <c>KILLED</c>).</summary>
    Killed,
}
