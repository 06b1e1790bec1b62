using YingHub.Moe.Core.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Tracking;

/// <summary>
/// The metrics of one training step, by <see cref="MetricNames"/> name, from the model's output and the optimizer
/// step's gradient norms: the LM loss, the auxiliary losses, the norms, and (when the output carries router
/// statistics) the utilization, each expert's load and each layer's capacity drops. Every value is one host read:
/// call it at log points only. A loop adds its own (learning rate, throughput, ...) to the returned dictionary.
/// </summary>
public static class StepMetrics
{
    /// <summary>The metrics of <paramref name="output"/> (and of <paramref name="norms"/>, labelled by <paramref name="normLabels"/>, when given).</summary>
    /// <param name="output">A training forward pass's output (with labels, so <see cref="CausalLMOutput.LmLoss"/> is set).</param>
    /// <param name="norms">Pre-clip gradient norms, e.g. <c>OptimizerStepResult.Norms</c>, or null.</param>
    /// <param name="normLabels">One label per entry of <paramref name="norms"/>, e.g. <c>OptimizerStep.NormLabels</c>.</param>
    /// <exception cref="ArgumentException">The norms and labels differ in length, or the output has no LM loss.</exception>
    public static Dictionary<string, double> Collect(CausalLMOutput output, Tensor? norms = null, IReadOnlyList<string>? normLabels = null)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (output.LmLoss is null) throw new ArgumentException("output.LmLoss is null: the forward pass had no labels.", nameof(output));
        var metrics = new Dictionary<string, double>(StringComparer.Ordinal)
        {
            [MetricNames.TrainLoss] = output.LmLoss.item<float>(),
            [MetricNames.LoadBalancingLoss] = output.LoadBalancingLoss.item<float>(),
            [MetricNames.ZLoss] = output.ZLoss.item<float>(),
            [MetricNames.UtilizationKlLoss] = output.UtilizationKlLoss.item<float>(),
        };
        if (norms is not null)
        {
            float[] n = norms.data<float>().ToArray();
            if (normLabels is null || normLabels.Count != n.Length)
                throw new ArgumentException($"normLabels has {normLabels?.Count.ToString() ?? "no"} labels for {n.Length} norms.", nameof(normLabels));
            for (int i = 0; i < n.Length; i++) metrics[MetricNames.GradNormPrefix + normLabels[i]] = n[i];
        }

        if (output.RouterStats.Count == 0) return metrics;
        double utilization = 0, dropped = 0;
        foreach (var layer in output.RouterStats)
        {
            utilization += layer.Utilization.item<float>();
            long[] counts = layer.TokensPerExpert.data<long>().ToArray();
            double total = Math.Max(1, counts.Sum());
            for (int e = 0; e < counts.Length; e++) metrics[MetricNames.ExpertLoad(layer.Layer, e)] = counts[e] / total;
            double share = layer.Dropped.sum().item<long>() / total; // assignments dropped by capacity / assignments routed
            metrics[MetricNames.DroppedShare(layer.Layer)] = share;
            dropped += share;
        }

        metrics[MetricNames.Utilization] = utilization / output.RouterStats.Count;
        metrics[MetricNames.DroppedMean] = dropped / output.RouterStats.Count;
        return metrics;
    }
}
