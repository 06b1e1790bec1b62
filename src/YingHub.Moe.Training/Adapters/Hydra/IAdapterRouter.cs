using TorchSharp;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Adapters.Hydra;

/// <summary>One adapter chosen for a prompt and its mixing weight.</summary>
/// <param name="Index">The adapter's index in <see cref="IAdapterRouter.AdapterNames"/>.</param>
/// <param name="Name">The adapter's name.</param>
/// <param name="Weight">Its weight in the mix; the weights of one selection sum to 1.</param>
public sealed record AdapterSelection(int Index, string Name, double Weight);

/// <summary>
/// Picks the LoRA adapters (one per domain) that fit a document from its embedding: the top-k adapters by
/// <see cref="Logits"/>, weighted by the softmax of their logits (k = 1: the best adapter with weight 1).
/// </summary>
public interface IAdapterRouter
{
    /// <summary>The adapters this router chooses among, in index order.</summary>
    IReadOnlyList<string> AdapterNames { get; }

    /// <summary>How many adapters a selection holds (at most <see cref="AdapterNames"/>' count).</summary>
    int TopK { get; }

    /// <summary>Routing logits (B, K) float32 of embeddings (B, D); higher is a better fit. The caller owns the result.</summary>
    Tensor Logits(Tensor embeddings);

    /// <summary>Writes the router to a JSON file, atomically.</summary>
    void Save(string path);
}

/// <summary>Selections from an <see cref="IAdapterRouter"/>'s logits.</summary>
public static class AdapterRouting
{
    /// <summary>
    /// For each row of <paramref name="embeddings"/> (B, D), or one embedding (D): the router's top-k adapters, best
    /// first, with weights <c>softmax</c> over their k logits (equal to the softmax over all logits renormalised over the k).
    /// </summary>
    public static AdapterSelection[][] Select(this IAdapterRouter router, Tensor embeddings)
    {
        ArgumentNullException.ThrowIfNull(router);
        ArgumentNullException.ThrowIfNull(embeddings);
        using var scope = torch.NewDisposeScope();
        var logits = router.Logits(embeddings.dim() == 1 ? embeddings.unsqueeze(0) : embeddings); // (B, K)
        var (top, index) = logits.topk(router.TopK, dim: 1);                                   // (B, k), (B, k)
        var weights = top.to(ScalarType.Float64).softmax(1);                                   // (B, k)
        long rows = logits.size(0);
        long[] indices = index.data<long>().ToArray();
        double[] w = weights.data<double>().ToArray();
        var selections = new AdapterSelection[rows][];
        for (long b = 0; b < rows; b++)
        {
            selections[b] = new AdapterSelection[router.TopK];
            for (int j = 0; j < router.TopK; j++)
            {
                int adapter = (int)indices[b * router.TopK + j];
                selections[b][j] = new AdapterSelection(adapter, router.AdapterNames[adapter], w[b * router.TopK + j]);
            }
        }

        return selections;
    }

    /// <summary>The best adapter's index for each row of <paramref name="embeddings"/> (B, D).</summary>
    public static int[] Top1(this IAdapterRouter router, Tensor embeddings)
    {
        ArgumentNullException.ThrowIfNull(router);
        using var scope = torch.NewDisposeScope();
        return router.Logits(embeddings).argmax(1).data<long>().ToArray().Select(i => (int)i).ToArray();
    }

    /// <summary>Loads a router written by <see cref="IAdapterRouter.Save"/> (a <see cref="CentroidRouter"/> or a <see cref="ClassifierRouter"/>).</summary>
    /// <exception cref="InvalidDataException">Not a router file, or one of an unknown kind.</exception>
    public static IAdapterRouter Load(string path)
    {
        var file = RouterFile.Read(path);
        return file.Kind switch
        {
            CentroidRouter.Kind => CentroidRouter.FromFile(file, path),
            ClassifierRouter.Kind => ClassifierRouter.FromFile(file, path),
            _ => throw new InvalidDataException($"'{path}': unknown router kind '{file.Kind}' (expected '{CentroidRouter.Kind}' or '{ClassifierRouter.Kind}')."),
        };
    }

    internal static void CheckEmbeddings(Tensor embeddings, long dimension)
    {
        ArgumentNullException.ThrowIfNull(embeddings);
        if (embeddings.dim() != 2 || embeddings.size(1) != dimension)
            throw new ArgumentException($"Embeddings must be (B, {dimension}); got shape [{string.Join(", ", embeddings.shape)}].", nameof(embeddings));
    }
}
