using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using YingHub.Moe.Core.Precision;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Adapters;

/// <summary>
/// The two low-rank factors of one target, under PEFT's names: <c>lora_A</c> (weight (r, in), Kaiming-uniform with
/// a = √5, as PEFT and <c>nn.Linear</c>) and <c>lora_B</c> (weight (out, r), zeros), so the update starts at zero.
/// </summary>
internal sealed class LoraLayer : nn.Module
{
    [ComponentName(Name = "lora_A")] private readonly Linear _loraA; // in -> r, weight (r, in)
    [ComponentName(Name = "lora_B")] private readonly Linear _loraB; // r -> out, weight (out, r)
    private readonly double _dropout;
    private readonly Scalar _scale;

    public LoraLayer(LoraTarget target, int rank, double scale, double dropout) : base(nameof(LoraLayer))
    {
        Target = target;
        var device = target.Weight.device;
        _loraA = nn.Linear(target.InFeatures, rank, hasBias: false, device: device);
        _loraB = nn.Linear(rank, target.OutFeatures, hasBias: false, device: device);
        using (torch.no_grad())
        {
            nn.init.kaiming_uniform_(_loraA.weight!, a: Math.Sqrt(5));
            _loraB.weight!.zero_();
        }

        _dropout = dropout;
        Scale = scale;
        _scale = scale.ToScalar();
        RegisterComponents();
    }

    /// <summary>The adapted layer.</summary>
    public LoraTarget Target { get; }

    /// <summary>A, (r, in).</summary>
    public Parameter A => _loraA.weight!;

    /// <summary>B, (out, r).</summary>
    public Parameter B => _loraB.weight!;

    /// <summary>The update's scale, alpha / r.</summary>
    public double Scale { get; }

    /// <summary>
    /// The unscaled update <c>dropout(x) Aᵀ Bᵀ</c> (..., out) of the target's input x (..., in), in
    /// <paramref name="dtype"/>; dropout only when <paramref name="training"/> (the target's mode). Both products run
    /// through <see cref="Autocast.Linear"/>, so they follow the model's autocast; outside autocast an input of another
    /// dtype than A's (a bf16 base under float32 factors) is cast to A's.
    /// </summary>
    public Tensor Update(Tensor x, bool training, ScalarType dtype)
    {
        using var scope = torch.NewDisposeScope();
        var h = training && _dropout > 0 ? nn.functional.dropout(x, _dropout, training: true) : x; // (..., in)
        if (Autocast.CurrentType is null && h.dtype != A.dtype) h = h.to(A.dtype);
        var update = Autocast.Linear(Autocast.Linear(h, A), B);                                     // (..., r) -> (..., out)
        if (update.dtype != dtype) update = update.to(dtype);
        return update.MoveToOuterDisposeScope();
    }

    /// <summary>The full update <c>scale · B A</c>, (out, in) float32, without autograd; the caller owns it.</summary>
    public Tensor Delta()
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        Tensor a = A.dtype == ScalarType.Float32 ? A : A.to(ScalarType.Float32), b = B.dtype == ScalarType.Float32 ? B : B.to(ScalarType.Float32);
        return torch.matmul(b, a).mul_(_scale).MoveToOuterDisposeScope(); // (out, r) @ (r, in) -> (out, in)
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing) _scale.Dispose();
        base.Dispose(disposing);
    }
}
