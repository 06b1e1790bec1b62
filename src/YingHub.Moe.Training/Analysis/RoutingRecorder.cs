using TorchSharp;
using YingHub.Moe.Core.Checkpoints;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Training.Data;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Analysis;

/// <summary>How <see cref="RoutingRecorder"/> runs a model over a corpus.</summary>
public sealed record RoutingRecorderOptions : IValidatableOptions
{
    /// <summary>Tokens to record at most (rounded down to whole blocks), in [1, 16,777,216].</summary>
    public int Tokens { get; init; } = 32_768;

    /// <summary>Block length T in [1, context length]; null uses the model's context length.</summary>
    public int? BlockLength { get; init; }

    /// <summary>Blocks per forward, in [1, 4096]. Under a capacity factor the capacity counts every token of a forward, so this changes the drops.</summary>
    public int BatchSize { get; init; } = 8;

    /// <summary>
    /// Apply expert capacity with this factor while recording, in (0, 1024], even when the model has none in evaluation
    /// (the model's own ranking and rounding rules apply); null records the model as it is.
    /// </summary>
    public double? CapacityFactor { get; init; }

    /// <inheritdoc />
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        errors.Require(Tokens is >= 1 and <= 16_777_216, nameof(Tokens), Tokens, "[1, 16777216]");
        errors.Require(BlockLength is null or >= 1, nameof(BlockLength), BlockLength, "at least 1 (and at most the context length), or null");
        errors.Require(BatchSize is >= 1 and <= 4096, nameof(BatchSize), BatchSize, "[1, 4096]");
        errors.Require(CapacityFactor is not { } cf || (cf > 0 && cf <= 1024), nameof(CapacityFactor), CapacityFactor, "(0, 1024] or null");
        return errors;
    }
}

/// <summary>
/// Records a model's routing decisions over consecutive blocks of a token sequence (<see cref="RoutingRecording"/>):
/// evaluation mode, no gradients, each forward in its own dispose scope, the routing read from
/// <see cref="CausalLMOutput.Routing"/>. Block i is tokens [i·T, (i + 1)·T) of the sequence; a token's position is
/// its index in its block.
/// </summary>
public static class RoutingRecorder
{
    /// <summary>Records <paramref name="model"/> over tokens [<paramref name="start"/>, <paramref name="start"/> + <paramref name="length"/>) of <paramref name="corpus"/>.</summary>
    /// <exception cref="ArgumentException">The range is outside the corpus or holds less than one block, or the options are invalid.</exception>
    public static RoutingRecording Record(MoeForCausalLM model, TokenCorpus corpus, long start, long length, RoutingRecorderOptions options)
    {
        ArgumentNullException.ThrowIfNull(corpus);
        ArgumentNullException.ThrowIfNull(options);
        if (start < 0 || length < 0 || start + length > corpus.Count)
            throw new ArgumentException($"Token range [{start}, {start + length}) is outside the corpus [0, {corpus.Count}).", nameof(length));
        var ids = new long[Math.Min(length, options.Tokens)];
        corpus.Read(start, ids);
        return Record(model, ids, options);
    }

    /// <summary>Records <paramref name="model"/> over the first whole blocks of <paramref name="tokens"/> (at most <see cref="RoutingRecorderOptions.Tokens"/> tokens).</summary>
    /// <exception cref="ArgumentException">Fewer tokens than one block, a block longer than the context, a model without MoE layers, or invalid options.</exception>
    public static RoutingRecording Record(MoeForCausalLM model, IReadOnlyList<long> tokens, RoutingRecorderOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokens);
        ArgumentNullException.ThrowIfNull(options);
        options.ThrowIfInvalid(nameof(options));
        var architecture = model.Options;
        int t = options.BlockLength ?? architecture.ContextLength;
        if (t > architecture.ContextLength)
            throw new ArgumentException($"BlockLength {t} exceeds the model's context length {architecture.ContextLength}.", nameof(options));
        int blocks = (int)(Math.Min(tokens.Count, options.Tokens) / t);
        if (blocks < 1) throw new ArgumentException($"{tokens.Count} tokens hold no whole block of {t}.", nameof(tokens));
        if (!Enumerable.Range(0, architecture.NumLayers).Any(architecture.IsMoeLayer)) throw new ArgumentException("The model has no MoE layer to analyse.", nameof(model));

        MoeForCausalLM? capped = options.CapacityFactor is { } factor ? WithCapacity(model, factor) : null;
        var run = capped ?? model;
        bool wasTraining = run.training;
        run.eval();
        try
        {
            int n = blocks * t, k = architecture.TopK, e = architecture.NumExperts;
            var ids = tokens.Take(n).ToArray();
            var layers = new List<(int Layer, int[] Experts, float[] Weights, bool[] Dropped)>();
            for (int first = 0; first < blocks; first += options.BatchSize)
            {
                int b = Math.Min(options.BatchSize, blocks - first), offset = first * t * k;
                using var scope = torch.NewDisposeScope();
                using var noGrad = torch.inference_mode();
                var input = torch.tensor(ids.AsSpan(first * t, b * t).ToArray(), b, t, device: run.Device); // (B, T)
                using var output = run.call(new CausalLMInput(input, RouterStatistics: false, OutputRouterLogits: true));
                for (int m = 0; m < output.Routing!.Count; m++)
                {
                    var routing = output.Routing[m];
                    if (layers.Count == m) layers.Add((routing.Layer, new int[n * k], new float[n * k], new bool[n * k]));
                    var (_, experts, weights, dropped) = layers[m];
                    routing.SelectedExperts.to(ScalarType.Int32).cpu().data<int>().CopyTo(experts.AsSpan(offset, b * t * k));  // (B·T, k)
                    routing.Weights.to(ScalarType.Float32).cpu().data<float>().CopyTo(weights.AsSpan(offset, b * t * k));    // (B·T, k)
                    routing.Dropped!.cpu().data<bool>().CopyTo(dropped.AsSpan(offset, b * t * k));                         // (B·T, k)
                }
            }

            var positions = Enumerable.Range(0, n).Select(i => i % t).ToArray();
            return new RoutingRecording(e, k, t, ids, positions, layers.Select(l => new LayerRoutingRecord(l.Layer, l.Experts, l.Weights, l.Dropped)).ToList());
        }
        finally
        {
            if (wasTraining) run.train();
            capped?.Dispose();
        }
    }

    /// <summary>A copy of <paramref name="model"/> (same weights and device) whose capacity binds in evaluation with <paramref name="factor"/>.</summary>
    private static MoeForCausalLM WithCapacity(MoeForCausalLM model, double factor)
    {
        var options = model.Options;
        options.CapacityFactor = factor;
        options.CapacityInEvaluation = true;
        var copy = new MoeForCausalLM(options);
        try
        {
            using var scope = torch.NewDisposeScope();
            copy.to(model.Device);
            MoeCheckpoint.LoadState(copy, model.state_dict(), "the analysed model");
            return copy;
        }
        catch
        {
            copy.Dispose();
            throw;
        }
    }
}
