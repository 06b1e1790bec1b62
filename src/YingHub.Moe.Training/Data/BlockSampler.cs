using TorchSharp;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Data;

/// <summary>
/// Random contiguous blocks of a token range, seeded: inputs (B, T) and next-token targets (B, T), as nanoGPT's
/// <c>get_batch</c>. <see cref="Split"/> makes the usual train/validation ranges (first 90% / last 10% by default).
/// </summary>
public sealed class BlockSampler
{
    private readonly TokenCorpus _corpus;
    private readonly long _start, _length;
    private readonly Random _random;

    /// <summary>Blocks from tokens [start, start + length) of <paramref name="corpus"/>.</summary>
    /// <exception cref="ArgumentException">The range is outside the corpus or shorter than one block plus its target.</exception>
    public BlockSampler(TokenCorpus corpus, long start, long length, int blockSize, int seed)
    {
        ArgumentNullException.ThrowIfNull(corpus);
        if (blockSize < 1) throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, "The block size must be at least 1.");
        if (start < 0 || length < 0 || start + length > corpus.Count)
            throw new ArgumentException($"Token range [{start}, {start + length}) is outside the corpus [0, {corpus.Count}).", nameof(length));
        if (length < blockSize + 1)
            throw new ArgumentException($"The token range holds {length} tokens; a block of {blockSize} plus its target needs {blockSize + 1}.", nameof(length));
        _corpus = corpus;
        _start = start;
        _length = length;
        BlockSize = blockSize;
        _random = new Random(seed);
    }

    /// <summary>T.</summary>
    public int BlockSize { get; }

    /// <summary>Blocks drawn so far (what a checkpoint records to resume the same sequence with <see cref="Skip"/>).</summary>
    public long Drawn { get; private set; }

    /// <summary>Train and validation samplers over the first <paramref name="trainFraction"/> and the rest of the corpus.</summary>
    public static (BlockSampler Train, BlockSampler Validation) Split(TokenCorpus corpus, int blockSize, int seed, double trainFraction = 0.9)
    {
        ArgumentNullException.ThrowIfNull(corpus);
        if (!(trainFraction > 0 && trainFraction < 1))
            throw new ArgumentOutOfRangeException(nameof(trainFraction), trainFraction, "The train fraction must be in (0, 1).");
        long train = (long)(corpus.Count * trainFraction);
        return (new BlockSampler(corpus, 0, train, blockSize, seed), new BlockSampler(corpus, train, corpus.Count - train, blockSize, seed + 1));
    }

    /// <summary>A batch of <paramref name="batchSize"/> random blocks: inputs (B, T) and targets (B, T), int64, on <paramref name="device"/>.</summary>
    public (Tensor Inputs, Tensor Targets) Next(int batchSize, Device? device = null)
    {
        int t = BlockSize;
        var ids = Draw(batchSize);
        using var scope = torch.NewDisposeScope();
        var all = torch.tensor(ids, batchSize, t + 1);                 // (B, T + 1)
        if (device is not null) all = all.to(device);
        return (all[.., ..t].contiguous().MoveToOuterDisposeScope(), all[.., 1..].contiguous().MoveToOuterDisposeScope());
    }

    /// <summary>
    /// <paramref name="batchSize"/> random blocks of T + 1 tokens each (a block and its last target), drawn as
    /// <see cref="Next"/> draws them, for objectives that rearrange the text (<c>Objectives.TrainingObjective</c>).
    /// </summary>
    public long[][] NextBlocks(int batchSize)
    {
        int n = BlockSize + 1;
        var ids = Draw(batchSize);
        return Enumerable.Range(0, batchSize).Select(b => ids.AsSpan(b * n, n).ToArray()).ToArray();
    }

    private long[] Draw(int batchSize)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "The batch size must be at least 1.");
        int t = BlockSize;
        var ids = new long[batchSize * (t + 1)];
        for (int b = 0; b < batchSize; b++)
            _corpus.Read(_start + _random.NextInt64(_length - t), ids.AsSpan(b * (t + 1), t + 1));
        Drawn += batchSize;
        return ids;
    }

    /// <summary>
    /// Advances the random state past <paramref name="blocks"/> blocks, for an exact resume: a sampler recreated with
    /// the same seed and skipped by the original's <see cref="Drawn"/> draws the blocks the original would draw next.
    /// </summary>
    public void Skip(long blocks)
    {
        if (blocks < 0) throw new ArgumentOutOfRangeException(nameof(blocks), blocks, "Cannot skip a negative number of blocks.");
        for (long i = 0; i < blocks; i++) _random.NextInt64(_length - BlockSize);
        Drawn += blocks;
    }
}
