using TorchSharp;
using YingHub.Moe.Core.Checkpoints;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Checkpointing;

/// <summary>
/// A copy of a model's state dict kept aside, e.g. early stopping's best weights: <see cref="Keep"/> copies it,
/// <see cref="Restore"/> copies it back, and <see cref="Save"/>/<see cref="Load"/> put it in a checkpoint directory
/// (<c>best_model.safetensors</c>) so a resumed run can still restore it. The copies live outside any dispose scope
/// until replaced or disposed.
/// </summary>
public sealed class BestWeights : IDisposable
{
    /// <summary>The file in a checkpoint directory.</summary>
    public const string FileName = "best_model.safetensors";

    private Dictionary<string, Tensor>? _weights;

    /// <summary>Whether a copy is held.</summary>
    public bool HasWeights => _weights is not null;

    /// <summary>Replaces the copy with <paramref name="model"/>'s current state dict.</summary>
    public void Keep(nn.Module model)
    {
        ArgumentNullException.ThrowIfNull(model);
        Clear();
        using var noGrad = torch.no_grad();
        _weights = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone().DetachFromDisposeScope());
    }

    /// <summary>Copies the kept state dict back into <paramref name="model"/>.</summary>
    /// <exception cref="InvalidOperationException">Nothing is kept.</exception>
    public void Restore(nn.Module model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (_weights is null) throw new InvalidOperationException("No weights are kept: call Keep (or Load) first.");
        using var noGrad = torch.no_grad();
        foreach (var (name, value) in model.state_dict()) value.copy_(_weights[name]);
    }

    /// <summary>Writes the copy to <c>{directory}/best_model.safetensors</c>, if there is one.</summary>
    public void Save(string directory)
    {
        if (_weights is not null) Safetensors.Write(Path.Combine(directory, FileName), _weights);
    }

    /// <summary>Reads the copy from <c>{directory}/best_model.safetensors</c>; without that file, holds nothing.</summary>
    public void Load(string directory)
    {
        Clear();
        string path = Path.Combine(directory, FileName);
        if (File.Exists(path)) _weights = Safetensors.Read(path).ToDictionary(kv => kv.Key, kv => kv.Value.DetachFromDisposeScope());
    }

    /// <summary>Drops the copy.</summary>
    public void Clear()
    {
        if (_weights is null) return;
        foreach (var t in _weights.Values) t.Dispose();
        _weights = null;
    }

    /// <inheritdoc />
    public void Dispose() => Clear();
}
