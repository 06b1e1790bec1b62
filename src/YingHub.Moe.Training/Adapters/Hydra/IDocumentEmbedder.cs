using static TorchSharp.torch;

namespace YingHub.Moe.Training.Adapters.Hydra;

/// <summary>Turns documents into fixed-size vectors for clustering and routing.</summary>
public interface IDocumentEmbedder
{
    /// <summary>The length of each embedding.</summary>
    int Dimension { get; }

    /// <summary>Embeddings (D, <see cref="Dimension"/>) float32 on the CPU of the D documents, in order; the caller owns the tensor.</summary>
    /// <exception cref="ArgumentException">A document the embedder cannot embed (named by index in the message).</exception>
    Tensor Embed(IReadOnlyList<string> documents);
}
