using TorchSharp;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Modules;

/// <summary>
/// Keys and values of every attention layer for incremental decoding, preallocated to the context length: each
/// forward with a cache appends the new positions and attends over everything cached so far. Dispose it when done.
/// </summary>
public sealed class KvCache : IDisposable
{
    private readonly Tensor[] _keys;   // per layer (B, nkv, Tmax, hd): the key/value heads (nh without grouped-query attention)
    private readonly Tensor[] _values; // per layer (B, nkv, Tmax, hd)
    private readonly (int Layers, int Heads, int HeadDim) _shape;
    private Tensor? _realKeys;   // (B, Tmax) bool once a padded batch was cached: which cached positions are real tokens
    private long[]? _realTokens; // (B): real tokens cached per row, with _realKeys

    internal KvCache(int layers, long batch, int heads, int maxLength, int headDim, ScalarType dtype, Device device)
    {
        if (layers < 1) throw new ArgumentOutOfRangeException(nameof(layers), layers, "At least one layer is needed.");
        if (batch < 1) throw new ArgumentOutOfRangeException(nameof(batch), batch, "The batch size must be at least 1.");
        Batch = batch;
        Capacity = maxLength;
        _shape = (layers, heads, headDim);
        _keys = new Tensor[layers];
        _values = new Tensor[layers];
        for (int i = 0; i < layers; i++)
        {
            _keys[i] = Owned.Tensor(torch.zeros([batch, heads, maxLength, headDim], dtype: dtype, device: device));
            _values[i] = Owned.Tensor(torch.zeros([batch, heads, maxLength, headDim], dtype: dtype, device: device));
        }
    }

    /// <summary>Positions cached so far (the position of the next token).</summary>
    public int Length { get; private set; }

    /// <summary>Maximum positions the cache holds (the model's context length).</summary>
    public int Capacity { get; }

    /// <summary>Batch size the cache holds (the size it was made for, less the rows <see cref="KeepRows"/> let go).</summary>
    public long Batch { get; private set; }

    /// <summary>Forgets every cached position (the buffers are reused).</summary>
    public void Reset()
    {
        Length = 0;
        _realKeys?.Dispose();
        _realKeys = null;
        _realTokens = null;
    }

    /// <summary>
    /// Keeps only the given rows (indices into the current batch, in the order given) and frees the others, e.g. the
    /// sequences of a batch that are still generating: later forwards take that many rows. Copies the kept rows once.
    /// </summary>
    /// <exception cref="ArgumentException">No row, or a row outside [0, <see cref="Batch"/>).</exception>
    public void KeepRows(IReadOnlyList<long> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        if (rows.Count == 0 || rows.Any(r => r < 0 || r >= Batch))
            throw new ArgumentException($"Rows to keep must be a non-empty list of indices in [0, {Batch}); got [{string.Join(", ", rows)}].", nameof(rows));
        using var normal = torch.inference_mode(false); // new buffers must not be inference tensors: later writes may run under no_grad
        var index = torch.tensor(rows.ToArray(), device: _keys[0].device);
        for (int i = 0; i < _keys.Length; i++)
        {
            (_keys[i], var oldKeys) = (Owned.Tensor(_keys[i].index_select(0, index)), _keys[i]);
            (_values[i], var oldValues) = (Owned.Tensor(_values[i].index_select(0, index)), _values[i]);
            oldKeys.Dispose();
            oldValues.Dispose();
        }

        if (_realKeys is not null)
        {
            (_realKeys, var old) = (Owned.Tensor(_realKeys.index_select(0, index)), _realKeys);
            old.Dispose();
            _realTokens = rows.Select(r => _realTokens![r]).ToArray();
        }

        index.Dispose();
        Batch = rows.Count;
    }

    /// <summary>Whether some cached position is padding (an attention mask with zeros was cached).</summary>
    public bool HasPadding => _realKeys is not null;

    /// <summary>Real tokens cached per row (B): <see cref="Length"/> for every row when nothing is padding.</summary>
    public long[] RealTokenCounts() => _realTokens?.ToArray() ?? Enumerable.Repeat((long)Length, (int)Batch).ToArray();

    /// <summary>Which cached positions are real tokens (B, Length), bool; a new tensor owned by the caller.</summary>
    internal Tensor RealKeys(Device device) =>
        _realKeys?.narrow(1, 0, Length).to(device) ?? torch.ones(Batch, Length, dtype: ScalarType.Bool, device: device);

    /// <summary>
    /// Records which of the <paramref name="newTokens"/> positions just appended are real tokens: <paramref name="real"/>
    /// (B, T) bool, or null when all are. Called for every forward once the cache or the input has padding (the model
    /// does this), before <see cref="Advance"/>.
    /// </summary>
    internal void RecordRealTokens(Tensor? real, long newTokens)
    {
        using var normal = torch.inference_mode(false); // the cache's own state outlives a decoding step's inference mode
        using var scope = torch.NewDisposeScope();
        if (_realKeys is null)
        {
            _realKeys = Owned.Tensor(torch.ones(Batch, Capacity, dtype: ScalarType.Bool, device: _keys[0].device)); // positions ≥ Length stay true until written
            _realTokens = Enumerable.Repeat((long)Length, (int)Batch).ToArray();
        }

        if (real is null)
        {
            for (int b = 0; b < _realTokens!.Length; b++) _realTokens[b] += newTokens; // all real: nothing to write
            return;
        }

        using (var slot = _realKeys.narrow(1, Length, newTokens)) slot.copy_(real);
        long[] added = real.to(ScalarType.Int64).sum(1).cpu().data<long>().ToArray(); // (B)
        for (int b = 0; b < added.Length; b++) _realTokens![b] += added[b];
    }

    /// <summary>
    /// Writes k, v (B, nkv, T, hd) of layer <paramref name="layer"/> at positions [Length, Length + T) and returns
    /// views of all cached keys and values (B, nkv, Length + T, hd). The length advances in <see cref="Advance"/>.
    /// </summary>
    internal (Tensor Keys, Tensor Values) Append(int layer, Tensor k, Tensor v)
    {
        long t = k.size(2);
        using (torch.no_grad())
        {
            using var kDst = _keys[layer].narrow(2, Length, t);
            using var vDst = _values[layer].narrow(2, Length, t);
            kDst.copy_(k);
            vDst.copy_(v);
        }

        return (_keys[layer].narrow(2, 0, Length + t), _values[layer].narrow(2, 0, Length + t));
    }

    /// <summary>Layer <paramref name="layer"/>'s whole key and value buffers (B, nkv, Tmax, hd), for writing position <see cref="Length"/> in place.</summary>
    internal (Tensor Keys, Tensor Values) Buffers(int layer) => (_keys[layer], _values[layer]);

    /// <summary>Checks that <paramref name="newTokens"/> more positions fit.</summary>
    internal void EnsureRoom(long batch, long newTokens, (int Layers, int Heads, int HeadDim) model)
    {
        if (model != _shape)
            throw new ArgumentException($"The cache was made for {_shape.Layers} layers × {_shape.Heads} key/value heads × {_shape.HeadDim}; this model has {model.Layers} × {model.Heads} × {model.HeadDim}.", "input");
        if (batch != Batch) throw new ArgumentException($"The cache holds batch size {Batch}; the input has {batch}.", "input");
        if (Length + newTokens > Capacity)
        {
            throw new ArgumentException(
                $"The cache holds {Length} positions; {newTokens} more exceed the context length {Capacity}.", "input");
        }
    }

    /// <summary>Advances the length after every layer has appended <paramref name="newTokens"/> positions.</summary>
    internal void Advance(long newTokens) => Length += (int)newTokens;

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var t in _keys) t.Dispose();
        foreach (var t in _values) t.Dispose();
        _realKeys?.Dispose();
    }
}
