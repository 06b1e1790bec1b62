using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Training.Tracking;

/// <summary>
/// Options of <see cref="MlflowTracker"/>: where the MLflow tracking server is, which experiment and run name to use,
/// how to authenticate and how long to wait. <see cref="FromEnvironment"/> reads MLflow's usual environment variables.
/// </summary>
public sealed class MlflowTrackerOptions : IValidatableOptions
{
    /// <summary>Environment variable of the tracking server's address.</summary>
    public const string TrackingUriVariable = "MLFLOW_TRACKING_URI";

    /// <summary>Environment variable of the experiment name.</summary>
    public const string ExperimentNameVariable = "MLFLOW_EXPERIMENT_NAME";

    /// <summary>Environment variable of a bearer token.</summary>
    public const string TokenVariable = "MLFLOW_TRACKING_TOKEN";

    /// <summary>Environment variable of the basic-auth user name.</summary>
    public const string UsernameVariable = "MLFLOW_TRACKING_USERNAME";

    /// <summary>Environment variable of the basic-auth password.</summary>
    public const string PasswordVariable = "MLFLOW_TRACKING_PASSWORD";

    /// <summary>The tracking server's base address, an absolute http or https URI, e.g. <c>http://127.0.0.1:5000</c> (a path prefix is kept).</summary>
    public string TrackingUri { get; set; } = "http://127.0.0.1:5000";

    /// <summary>The experiment to log to; created when it does not exist. Non-empty.</summary>
    public string ExperimentName { get; set; } = "yinghub-moe";

    /// <summary>The run's display name; null lets MLflow choose one.</summary>
    public string? RunName { get; set; }

    /// <summary>A bearer token (<c>Authorization: Bearer …</c>); not together with <see cref="Username"/>.</summary>
    public string? Token { get; set; }

    /// <summary>A basic-auth user name (needs <see cref="Password"/>).</summary>
    public string? Username { get; set; }

    /// <summary>A basic-auth password (needs <see cref="Username"/>).</summary>
    public string? Password { get; set; }

    /// <summary>Timeout of each HTTP request; greater than zero and at most 10 minutes. Default 30 s.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How many requests may wait for the background sender; 1 to 100,000. When full, the training thread waits
    /// (nothing is dropped). Default 1024.
    /// </summary>
    public int QueueCapacity { get; set; } = 1024;

    /// <summary>
    /// Options filled from <c>MLFLOW_TRACKING_URI</c>, <c>MLFLOW_EXPERIMENT_NAME</c>, <c>MLFLOW_TRACKING_TOKEN</c>,
    /// <c>MLFLOW_TRACKING_USERNAME</c> and <c>MLFLOW_TRACKING_PASSWORD</c>; unset variables keep the defaults.
    /// </summary>
    /// <param name="trackingUri">Overrides <c>MLFLOW_TRACKING_URI</c> when not null.</param>
    public static MlflowTrackerOptions FromEnvironment(string? trackingUri = null)
    {
        static string? Env(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } v ? v : null;
        var options = new MlflowTrackerOptions
        {
            Token = Env(TokenVariable),
            Username = Env(UsernameVariable),
            Password = Env(PasswordVariable),
        };
        if ((trackingUri ?? Env(TrackingUriVariable)) is { } uri) options.TrackingUri = uri;
        if (Env(ExperimentNameVariable) is { } experiment) options.ExperimentName = experiment;
        return options;
    }

    /// <inheritdoc />
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        bool uriOk = Uri.TryCreate(TrackingUri, UriKind.Absolute, out Uri? uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps);
        errors.Require(uriOk, nameof(TrackingUri), TrackingUri, "an absolute http:// or https:// URI, e.g. http://127.0.0.1:5000");
        errors.Require(!string.IsNullOrWhiteSpace(ExperimentName), nameof(ExperimentName), ExperimentName, "a non-empty name");
        errors.Require(RunName is null || (RunName.Length > 0 && RunName.Length <= 250), nameof(RunName), RunName, "null, or 1 to 250 characters");
        errors.Require(RequestTimeout > TimeSpan.Zero && RequestTimeout <= TimeSpan.FromMinutes(10), nameof(RequestTimeout), RequestTimeout, "> 0 and <= 00:10:00");
        errors.Require(QueueCapacity is >= 1 and <= 100_000, nameof(QueueCapacity), QueueCapacity, "1 to 100000");
        errors.Require(Token is null || Username is null, nameof(Token), "***", "not together with Username (choose bearer or basic auth)");
        errors.Require((Username is null) == (Password is null), nameof(Username), Username ?? "null", "Username and Password set together (basic auth), or neither");
        return errors;
    }
}
