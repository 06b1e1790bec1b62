using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Tokenizers;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Objectives;

/// <summary>
/// Turns blocks of text into training sequences for an <see cref="ObjectiveMixtureOptions">objective mixture</see>
/// (UL2's mixture of denoisers in decoder-only form): each sequence draws its objective from the weights of the
/// current stage, then
/// <list type="bullet">
/// <item>causal: the block itself, loss on every next token;</item>
/// <item>prefix LM: <c>[mode] x₀ … x_{N−2}</c>, a prefix of the mode token and 1 … N − 3 text tokens drawn uniformly,
/// loss after the prefix;</item>
/// <item>span corruption: <c>[mode] kept₀ &lt;extra_id_0&gt; kept₁ &lt;extra_id_1&gt; … | &lt;extra_id_0&gt; span₀
/// &lt;extra_id_1&gt; span₁ …</c> over the longest source that fits (<see cref="SpanCorruption"/>), loss on the
/// part after "|" (the targets), the rest its context.</item>
/// </list>
/// Context attends to itself both ways when the objective's <see cref="ObjectiveOptions.BidirectionalPrefix"/> says so.
/// Mode and sentinel tokens are special tokens of the tokenizer (<see cref="SpecialTokens"/>). Draws come from a
/// generator seeded by (seed, step), so a resumed run draws what the uninterrupted one would.
/// </summary>
public sealed class TrainingObjective
{
    /// <summary>Id of the token that pads a short sequence (any id: padding is masked out of attention and loss).</summary>
    public const long PadId = 0;

    private const long IgnoreIndex = -100;
    private readonly Dictionary<string, long> _modeIds = new(StringComparer.Ordinal);
    private readonly long[] _sentinelIds;

    /// <summary>The objective of <paramref name="options"/> for blocks of <paramref name="blockSize"/> tokens, with ids from <paramref name="tokenizer"/>.</summary>
    /// <exception cref="ArgumentException">Invalid options (named), a block too short for an objective, or a tokenizer without the special tokens <see cref="SpecialTokens"/> lists.</exception>
    public TrainingObjective(ObjectiveMixtureOptions options, ITextTokenizer tokenizer, int blockSize)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(tokenizer);
        options.ThrowIfInvalid(nameof(options));
        if (blockSize < 4) throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, "An objective mixture needs blocks of at least 4 tokens.");
        Options = options.Clone();
        BlockSize = blockSize;
        var required = SpecialTokens(Options, blockSize);
        if (required.Count > 0)
        {
            var special = tokenizer as SpecialTokensTokenizer;
            var missing = required.Where(t => special is null || !special.SpecialTokens.Contains(t)).ToList();
            if (missing.Count > 0)
                throw new ArgumentException($"The {tokenizer.Name} tokenizer lacks the objective's special tokens {string.Join(", ", missing.Take(5))}{(missing.Count > 5 ? $" (and {missing.Count - 5} more)" : "")}: build it as new SpecialTokensTokenizer(base, TrainingObjective.SpecialTokens(options, blockSize)).", nameof(tokenizer));
            foreach (var o in Options.Objectives.Where(o => o.ModeToken is not null)) _modeIds[o.ModeToken!] = special!.IdOf(o.ModeToken!);
            _sentinelIds = Enumerable.Range(0, SentinelCount(Options, blockSize)).Select(i => (long)special!.IdOf(Sentinel(i))).ToArray();
        }
        else
        {
            _sentinelIds = [];
        }

        MaxTokenId = tokenizer.VocabSize - 1;
    }

    /// <summary>The mixture (a copy).</summary>
    public ObjectiveMixtureOptions Options { get; }

    /// <summary>T: tokens the model reads per sequence (each block holds T + 1).</summary>
    public int BlockSize { get; }

    /// <summary>The largest token id the objective writes (a model needs a vocabulary above it).</summary>
    public long MaxTokenId { get; }

    /// <summary>The name of sentinel <paramref name="index"/>: T5's <c>&lt;extra_id_N&gt;</c>.</summary>
    public static string Sentinel(int index) => $"<extra_id_{index}>";

    /// <summary>
    /// The special tokens <paramref name="options"/> needs at <paramref name="blockSize"/>: its mode tokens (in order of
    /// first use), then as many sentinels as a sequence can hold spans. Empty for plain causal LM.
    /// </summary>
    /// <exception cref="ArgumentException">Invalid options, or a block too short for a span objective.</exception>
    public static IReadOnlyList<string> SpecialTokens(ObjectiveMixtureOptions options, int blockSize)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.ThrowIfInvalid(nameof(options));
        var modes = options.Objectives.Select(o => o.ModeToken).OfType<string>().Distinct(StringComparer.Ordinal);
        return [.. modes, .. Enumerable.Range(0, SentinelCount(options, blockSize)).Select(Sentinel)];
    }

    private static int SentinelCount(ObjectiveMixtureOptions options, int blockSize) =>
        options.Objectives.Where(o => o.Kind == ObjectiveKind.SpanCorruption)
            .Select(o => SpanCorruption.Counts(SourceLength(o, blockSize), o.CorruptionRate, o.MeanSpanLength).Spans)
            .DefaultIfEmpty(0).Max();

    private static int SourceLength(ObjectiveOptions o, int blockSize) =>
        SpanCorruption.SourceLength(blockSize + 1, o.CorruptionRate, o.MeanSpanLength, o.ModeToken is null ? 0 : 1);

    /// <summary>
    /// The sequence <paramref name="objective"/> makes of <paramref name="block"/> (T + 1 tokens), drawing from
    /// <paramref name="random"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The block is not T + 1 tokens, or the objective is not one of the mixture's.</exception>
    public ObjectiveExample Apply(ObjectiveOptions objective, ReadOnlySpan<long> block, Random random)
    {
        ArgumentNullException.ThrowIfNull(objective);
        ArgumentNullException.ThrowIfNull(random);
        if (block.Length != BlockSize + 1) throw new ArgumentException($"A block holds T + 1 = {BlockSize + 1} tokens; got {block.Length}.", nameof(block));
        if (!Options.Objectives.Any(o => o.Name == objective.Name)) throw new ArgumentException($"'{objective.Name}' is not an objective of this mixture.", nameof(objective));
        var tokens = new List<long>(BlockSize + 1);
        if (objective.ModeToken is { } mode) tokens.Add(_modeIds[mode]);
        int context = tokens.Count; // tokens before the first target
        switch (objective.Kind)
        {
            case ObjectiveKind.Causal:
                foreach (long id in block[..(BlockSize + 1 - tokens.Count)]) tokens.Add(id);
                return new ObjectiveExample(objective.Name, [.. tokens], TargetsFrom: 1, AttentionPrefix: 0);
            case ObjectiveKind.PrefixLm:
            {
                int text = BlockSize + 1 - tokens.Count;                       // text tokens in the sequence
                int prefix = tokens.Count + random.Next(1, text - 1);         // 1 … text − 2 text tokens of context
                foreach (long id in block[..text]) tokens.Add(id);
                return new ObjectiveExample(objective.Name, [.. tokens], prefix, objective.BidirectionalPrefix ? prefix : 0);
            }

            default:
            {
                int length = SourceLength(objective, BlockSize);
                var noise = SpanCorruption.NoiseMask(length, objective.CorruptionRate, objective.MeanSpanLength, random);
                var targets = new List<long>();
                int span = -1;
                for (int i = 0; i < length; i++)
                {
                    if (!noise[i])
                    {
                        tokens.Add(block[i]);
                        continue;
                    }

                    if (i == 0 || !noise[i - 1])
                    {
                        span++;
                        tokens.Add(_sentinelIds[span]);
                        targets.Add(_sentinelIds[span]);
                    }

                    targets.Add(block[i]);
                }

                context = tokens.Count;
                tokens.AddRange(targets);
                return new ObjectiveExample(objective.Name, [.. tokens], context, objective.BidirectionalPrefix ? context : 0);
            }
        }
    }

    /// <summary>
    /// A batch of the sequences the mixture makes of <paramref name="blocks"/> (each T + 1 tokens) at optimizer step
    /// <paramref name="step"/> (from 0) of <paramref name="steps"/>, on <paramref name="device"/>.
    /// </summary>
    /// <exception cref="ArgumentException">No blocks, or a block that is not T + 1 tokens.</exception>
    public ObjectiveBatch Build(IReadOnlyList<long[]> blocks, long step, long steps, long seed, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(blocks);
        if (blocks.Count == 0) throw new ArgumentException("No blocks given.", nameof(blocks));
        var random = new Random(unchecked((int)(seed * 1_000_003 + step)) ^ 0x55_4C_32); // one stream per (seed, step): resumable without state
        var stage = Options.StageAt(steps > 0 ? Math.Clamp((double)step / steps, 0, 1) : 0);
        var examples = blocks.Select(block => Apply(Draw(stage, random), block, random)).ToList();

        int b = examples.Count, t = BlockSize;
        var ids = new long[b * t];
        var labels = new long[b * t];
        var real = new bool[b * t];
        var prefix = new long[b];
        Array.Fill(ids, PadId);
        Array.Fill(labels, IgnoreIndex);
        for (int r = 0; r < b; r++)
        {
            var e = examples[r];
            for (int j = 0; j < t && j < e.Tokens.Length; j++)
            {
                ids[r * t + j] = e.Tokens[j];
                real[r * t + j] = true;
                if (j + 1 < e.Tokens.Length && j + 1 >= e.TargetsFrom) labels[r * t + j] = e.Tokens[j + 1];
            }

            prefix[r] = e.AttentionPrefix;
        }

        using var scope = torch.NewDisposeScope();
        bool padded = real.Contains(false), prefixed = prefix.Any(p => p > 0);
        Tensor Place(Tensor x) => (device is null ? x : x.to(device)).MoveToOuterDisposeScope();
        return new ObjectiveBatch(Place(torch.tensor(ids, b, t)), Place(torch.tensor(labels, b, t)),
            padded ? Place(torch.tensor(real, b, t)) : null, prefixed ? Place(torch.tensor(prefix)) : null, examples.Select(e => e.Objective).ToList());
    }

    private ObjectiveOptions Draw(ObjectiveStage stage, Random random)
    {
        double total = stage.Weights.Values.Sum(), u = random.NextDouble() * total;
        foreach (var o in Options.Objectives)
        {
            double w = stage.Weights.GetValueOrDefault(o.Name);
            if (w <= 0) continue;
            if (u < w) return o;
            u -= w;
        }

        return Options.Objectives.Last(o => stage.Weights.GetValueOrDefault(o.Name) > 0); // rounding at the top end
    }
}
