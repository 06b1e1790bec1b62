using TorchSharp;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Modules;

/// <summary>
/// Per-expert assignment counts of the last W training batches of one MoE layer, as a ring buffer (W, E) kept in the
/// state dict (so resuming continues the same window). Updated only in training mode, with no host reads.
/// </summary>
internal sealed class UtilizationWindow : nn.Module
{
    [ComponentName(Name = "counts")] private readonly Tensor _counts; // (W, E) int64: exact, and untouched by dtype casts of the model
    [ComponentName(Name = "cursor")] private readonly Tensor _cursor; // () int64: the row the next batch overwrites
    private readonly long _window;

    public UtilizationWindow(int window, int experts) : base(nameof(UtilizationWindow))
    {
        _window = window;
        _counts = Owned.Tensor(torch.zeros(window, experts, dtype: ScalarType.Int64));
        _cursor = Owned.Tensor(torch.zeros(1, dtype: ScalarType.Int64));
        RegisterComponents();
    }

    /// <summary>Assignments per expert summed over the stored batches (E).</summary>
    public Tensor Total() => _counts.sum([0]);

    /// <summary>Stores one batch's assignments per expert (E) over the oldest row.</summary>
    public void Record(Tensor counts)
    {
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        _counts.index_copy_(0, _cursor, counts.to(_counts.dtype, _counts.device).unsqueeze(0));
        _cursor.add_(1).remainder_(_window);
    }
}
