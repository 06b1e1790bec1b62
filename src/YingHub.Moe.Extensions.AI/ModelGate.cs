using System.Runtime.CompilerServices;

namespace YingHub.Moe.Extensions.AI;

/// <summary>
/// One request at a time per model instance: a model's inference caches are built lazily without locks, and its
/// training/evaluation mode is switched around each generation, so two generations must never overlap on one model
/// (docs/architecture.md). The gate belongs to the model, not to a client, so two clients over one model share it.
/// Waiting requests are served in arrival order (<see cref="SemaphoreSlim"/> queues its waiters) up to a bound.
/// </summary>
internal sealed class ModelGate
{
    private static readonly ConditionalWeakTable<object, ModelGate> Gates = new();
    private readonly SemaphoreSlim _turn = new(1, 1);
    private int _admitted; // requests generating or waiting

    /// <summary>The gate of <paramref name="model"/>.</summary>
    public static ModelGate For(object model) => Gates.GetValue(model, _ => new ModelGate());

    /// <summary>Waits for the model; the lease lets the next request in when disposed.</summary>
    /// <exception cref="ModelBusyException"><paramref name="maxQueued"/> requests already wait.</exception>
    /// <exception cref="OperationCanceledException">Cancelled while waiting.</exception>
    public async Task<IDisposable> EnterAsync(int maxQueued, CancellationToken cancellationToken)
    {
        // the one generating plus maxQueued waiting
        if (Interlocked.Increment(ref _admitted) > maxQueued + 1)
        {
            Interlocked.Decrement(ref _admitted);
            throw new ModelBusyException(maxQueued);
        }

        try
        {
            await _turn.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            Interlocked.Decrement(ref _admitted);
            throw;
        }

        return new Lease(this);
    }

    private sealed class Lease(ModelGate gate) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) != 0) return;
            Interlocked.Decrement(ref gate._admitted);
            gate._turn.Release();
        }
    }
}
