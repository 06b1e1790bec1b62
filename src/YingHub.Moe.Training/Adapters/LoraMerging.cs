using TorchSharp;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Adapters;

/// <summary>
/// Combines several adapters of one model into one full update per target (<see cref="LoraUpdate"/>), over the union
/// of their targets (an adapter without a target contributes zero there). Each adapter's update is
/// <c>Δ_i = scale_i · B_i A_i</c>, (out, in).
/// </summary>
public static class LoraMerging
{
    /// <summary>The weighted sum <c>Σ_i w_i Δ_i</c> per target.</summary>
    /// <exception cref="ArgumentException">No adapter, adapters of different models, a weight that is not finite, or a target whose shapes differ.</exception>
    public static LoraUpdate WeightedSum(IReadOnlyList<(LoraAdapter Adapter, double Weight)> adapters) =>
        Combine(adapters, (deltas, weights) => (deltas * weights).sum(dim: 0));

    /// <summary>
    /// TIES-merging (Yadav et al. 2023, as PEFT's <c>ties</c>), per target: trim each Δ_i to its k = ⌈density · n⌉
    /// largest magnitudes (n entries; the rest become 0; ties at the k-th magnitude are broken by <c>topk</c>); elect
    /// each entry's sign as the sign of the sum of the trimmed Δ_i there (the side with the larger summed magnitude;
    /// + on a tie); then average the weighted trimmed entries <c>w_i Δ_i</c> whose sign equals the elected one
    /// (entries trimmed to 0 do not count; an entry with none stays 0).
    /// </summary>
    /// <param name="adapters">The adapters and their weights (1 for the plain method).</param>
    /// <param name="density">The share of entries each update keeps, (0, 1].</param>
    /// <exception cref="ArgumentException">As <see cref="WeightedSum"/>, or a density outside (0, 1].</exception>
    public static LoraUpdate Ties(IReadOnlyList<(LoraAdapter Adapter, double Weight)> adapters, double density)
    {
        if (!(density > 0 && density <= 1)) throw new ArgumentOutOfRangeException(nameof(density), density, $"density = {density} is invalid; allowed: (0, 1].");
        return Combine(adapters, (deltas, weights) => TiesMerge(deltas, weights, density));
    }

    /// <summary>TIES over stacked updates <paramref name="deltas"/> (M, out, in) with weights (M, 1, 1).</summary>
    private static Tensor TiesMerge(Tensor deltas, Tensor weights, double density)
    {
        long m = deltas.size(0), n = deltas[0].numel();
        long k = Math.Min(n, (long)Math.Ceiling(Math.Round(density * n, 6))); // rounded first: 0.28 · 25 is 7.000000000000001 in binary
        var flat = deltas.reshape(m, n);                                               // (M, n)
        var keep = flat.abs().topk((int)k, dim: 1).indexes;                            // (M, k)
        var mask = torch.zeros_like(flat, dtype: ScalarType.Bool).scatter_(1, keep, torch.ones_like(keep, dtype: ScalarType.Bool)); // (M, n)
        var trimmed = torch.where(mask, flat, torch.zeros_like(flat)).reshape(deltas.shape); // (M, out, in)
        var total = trimmed.sum(dim: 0);                                               // (out, in)
        var elected = torch.where(total >= 0, torch.ones_like(total), -torch.ones_like(total)); // (out, in), +1 on a tie
        var agree = trimmed.sign() == elected;                                         // (M, out, in); a trimmed 0 never agrees
        var kept = torch.where(agree, trimmed * weights, torch.zeros_like(trimmed));    // (M, out, in)
        var count = agree.sum(dim: 0).to(ScalarType.Float32).clamp_min(1);             // (out, in)
        return kept.sum(dim: 0) / count;                                               // (out, in)
    }

    private static LoraUpdate Combine(IReadOnlyList<(LoraAdapter Adapter, double Weight)> adapters, Func<Tensor, Tensor, Tensor> combine)
    {
        ArgumentNullException.ThrowIfNull(adapters);
        if (adapters.Count == 0) throw new ArgumentException("Merging needs at least one adapter.", nameof(adapters));
        var model = adapters[0].Adapter.Model;
        foreach (var (adapter, weight) in adapters)
        {
            if (!ReferenceEquals(adapter.Model, model)) throw new ArgumentException($"Adapter '{adapter.Name}' belongs to another model than '{adapters[0].Adapter.Name}'.", nameof(adapters));
            if (!double.IsFinite(weight)) throw new ArgumentException($"Adapter '{adapter.Name}' has weight {weight}; allowed: a finite number.", nameof(adapters));
        }

        var targets = adapters.SelectMany(a => a.Adapter.Layers.Select(l => l.Target)).DistinctBy(t => t.Name).ToList();
        var order = LoraTarget.Find(model, targets.Select(t => t.Name)).Select(t => t.Name).ToList(); // the model's order
        targets = targets.OrderBy(t => order.IndexOf(t.Name)).ToList();
        var entries = new List<(LoraTarget, Tensor)>();
        try
        {
            foreach (var target in targets)
            {
                using var scope = torch.NewDisposeScope();
                using var noGrad = torch.no_grad();
                var deltas = torch.stack(adapters.Select(a => a.Adapter.TargetNames.Contains(target.Name)
                    ? a.Adapter.Delta(target.Name)
                    : torch.zeros(target.OutFeatures, target.InFeatures, device: target.Weight.device)));                       // (M, out, in)
                var weights = torch.tensor(adapters.Select(a => (float)a.Weight).ToArray(), device: deltas.device).view(-1, 1, 1); // (M, 1, 1)
                entries.Add((target, combine(deltas, weights).DetachFromDisposeScope()));
            }
        }
        catch
        {
            foreach (var (_, d) in entries) d.Dispose();
            throw;
        }

        return new LoraUpdate(model, entries);
    }
}
