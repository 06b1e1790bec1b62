namespace YingHub.Moe.Training.Tracking;

/// <summary>An MLflow REST call that the server answered with a non-success status.</summary>
internal sealed class MlflowRequestException(string message, int statusCode, string? errorCode) : InvalidOperationException(message)
{
    public int StatusCode { get; } = statusCode;

    public string? ErrorCode { get; } = errorCode;
}
