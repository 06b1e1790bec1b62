using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Kernels;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Modules;

/// <summary>
/// Dispatch of a batched decoding step's few tokens (2..<see cref="FewRows.MaxRows"/>) in inference on the CPU: the
/// router's choices are read to the host once, grouped by expert in a loop, and every expert runs on its tokens in
/// <see cref="ExpertRows"/>' managed kernels. It replaces <see cref="TokenDispatch"/>'s sort, gather, split, per-expert
/// products and scatter, which at a few tokens cost more than the products themselves. Dropless, as inference is.
/// </summary>
internal static class FewTokenDispatch
{
    /// <summary>
    /// The block's routed output (N, C) and the assignments per expert (before and after capacity: equal, nothing is
    /// dropped), or null when this path does not apply: training, a dispatch mask (padding), autograd or autocast, or
    /// shapes the kernels do not take. flat (N, C); <paramref name="layers"/> gives expert e's kept views.
    /// </summary>
    public static (Tensor Output, long[] Assigned, long[] Kept)? Run(Tensor flat, RouterOutput route, int experts, Func<int, ExpertLayer[]> layers,
        ExpertActivation activation, bool training, Tensor? dispatchMask)
    {
        if (training || dispatchMask is not null || !InferenceViews.Active || !FewRows.Runs(flat) || route.Weights.dtype != ScalarType.Float32)
            return null;
        int k = (int)route.Indices.size(1);
        long[] chosen = route.Indices.data<long>().ToArray(); // (N·k): the one host read
        float[] gates = route.Weights.data<float>().ToArray(); // (N·k)
        var counts = new long[experts];
        foreach (long e in chosen) counts[e]++;
        var assignments = new List<ExpertAssignment>();
        for (int e = 0; e < experts; e++)
        {
            if (counts[e] == 0) continue; // an expert with no tokens costs nothing
            var tokens = new int[counts[e]];
            var weights = new float[counts[e]];
            for (int a = 0, i = 0; a < chosen.Length; a++)
            {
                if (chosen[a] != e) continue;
                (tokens[i], weights[i]) = (a / k, gates[a]);
                i++;
            }

            assignments.Add(new ExpertAssignment(layers(e), tokens, weights));
        }

        return ExpertRows.Applies(flat, assignments, activation) ? (ExpertRows.Combine(flat, assignments, activation), counts, counts) : null;
    }
}
