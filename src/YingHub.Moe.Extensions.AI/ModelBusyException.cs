namespace YingHub.Moe.Extensions.AI;

/// <summary>
/// The model is generating and <see cref="YingHubMoeChatClientOptions.MaxQueuedRequests"/> requests already wait for
/// it: try again later (a server answers 429).
/// </summary>
public sealed class ModelBusyException : InvalidOperationException
{
    /// <summary>A refusal with <paramref name="queued"/> requests already waiting.</summary>
    public ModelBusyException(int queued)
        : base($"The model is busy: {queued} requests already wait for it. Try again later.")
    {
        Queued = queued;
    }

    /// <summary>The requests that were waiting (the queue's bound).</summary>
    public int Queued { get; }
}
