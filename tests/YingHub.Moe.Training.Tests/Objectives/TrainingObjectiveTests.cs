using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Training.Data;
using YingHub.Moe.Training.Objectives;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Tests.Objectives;

/// <summary>
/// UL2's objectives in decoder-only form: span corruption keeps every source token exactly once and hits its rate and
/// mean span, prefix LM trains only after its prefix, the mixture follows its stages, and the trainer runs them.
/// </summary>
public class TrainingObjectiveTests
{
    private const int Block = 63; // T: blocks of 64 tokens
    private const int BaseVocab = 1000;

    /// <summary>A stand-in base vocabulary of 1,000 ids (the objective only needs the special tokens' ids after it).</summary>
    private static readonly CharTokenizer Base = new(new string(Enumerable.Range(0, BaseVocab).Select(i => (char)(0x4E00 + i)).ToArray()));

    private static TrainingObjective Objective(ObjectiveMixtureOptions mixture, int block = Block) =>
        new(mixture, new SpecialTokensTokenizer(Base, TrainingObjective.SpecialTokens(mixture, block)), block);

    private static ObjectiveMixtureOptions Single(ObjectiveOptions objective) => new()
    {
        Objectives = [objective],
        Schedule = [new ObjectiveStage { From = 0, Weights = new() { [objective.Name] = 1 } }],
    };

    /// <summary>A block of distinct ids (so every token can be traced): start, start + 1, ….</summary>
    private static long[] Distinct(int start, int length = Block + 1) => Enumerable.Range(start, length).Select(i => (long)i).ToArray();

    [Theory]
    [InlineData(3, 0.15)]
    [InlineData(8, 0.15)]
    [InlineData(3, 0.5)]
    [InlineData(64, 0.5)]
    [InlineData(1, 0.3)]
    public void Span_corruption_keeps_every_source_token_exactly_once(double meanSpan, double rate)
    {
        var objective = new ObjectiveOptions { Name = "span", Kind = ObjectiveKind.SpanCorruption, MeanSpanLength = meanSpan, CorruptionRate = rate, ModeToken = "[X]" };
        var ul2 = Objective(Single(objective));
        var tokenizer = new SpecialTokensTokenizer(Base, TrainingObjective.SpecialTokens(Single(objective), Block));
        long mode = tokenizer.IdOf("[X]");
        var random = new Random(5);
        for (int sample = 0; sample < 200; sample++)
        {
            long[] block = Distinct(sample % 300);
            var e = ul2.Apply(objective, block, random);
            Assert.True(e.Tokens.Length <= Block + 1);
            Assert.Equal(mode, e.Tokens[0]);
            Assert.Equal(e.TargetsFrom, e.AttentionPrefix);

            // rebuild the source: every sentinel in the input replaced by the target span after the same sentinel
            var input = e.Tokens[1..e.TargetsFrom];
            var targets = e.Tokens[e.TargetsFrom..];
            var spans = new Dictionary<long, List<long>>();
            List<long>? current = null;
            foreach (long id in targets)
            {
                if (id >= BaseVocab) spans[id] = current = [];
                else current!.Add(id);
            }

            var rebuilt = new List<long>();
            foreach (long id in input)
            {
                if (id >= BaseVocab) rebuilt.AddRange(spans[id]);
                else rebuilt.Add(id);
            }

            Assert.Equal(block[..rebuilt.Count], rebuilt);                              // in order, none lost, none repeated
            Assert.Equal(spans.Count, input.Count(id => id >= BaseVocab));              // each sentinel once in the input
            Assert.All(spans.Values, s => Assert.NotEmpty(s));
            Assert.Equal(e.Tokens.Length, 1 + rebuilt.Count + 2 * spans.Count);
        }
    }

    [Theory]
    [InlineData(3, 0.15, 500)]
    [InlineData(8, 0.15, 500)]
    [InlineData(3, 0.5, 500)]
    [InlineData(32, 0.5, 1000)]
    public void Noise_hits_the_requested_rate_and_mean_span_over_many_samples(double meanSpan, double rate, int length)
    {
        var random = new Random(11);
        long corrupted = 0, spans = 0, total = 0;
        var spanLengths = new HashSet<int>();
        var everCorrupted = new bool[length];
        for (int sample = 0; sample < 400; sample++)
        {
            var mask = SpanCorruption.NoiseMask(length, rate, meanSpan, random);
            Assert.False(mask[0]); // a kept token comes first
            total += length;
            int run = 0;
            for (int i = 0; i < length; i++)
            {
                if (mask[i]) { corrupted++; everCorrupted[i] = true; run++; }
                if ((!mask[i] || i == length - 1) && run > 0) { spans++; spanLengths.Add(run); run = 0; }
            }
        }

        Assert.InRange((double)corrupted / total, rate - 0.01, rate + 0.01);
        Assert.InRange((double)corrupted / spans, meanSpan * 0.9, meanSpan * 1.1);
        Assert.True(spanLengths.Count > 2, "span lengths should vary");
        Assert.True(everCorrupted.Skip(1).Count(c => c) > length * 0.95, "corruption should reach (almost) every position after the first");
    }

    [Fact]
    public void Prefix_lm_trains_only_after_its_prefix()
    {
        var s = new ObjectiveOptions { Name = "s", Kind = ObjectiveKind.PrefixLm, ModeToken = "[S]" };
        var objective = Objective(Single(s));
        var random = new Random(3);
        var prefixes = new HashSet<int>();
        for (int sample = 0; sample < 300; sample++)
        {
            long[] block = Distinct(sample);
            var e = objective.Apply(s, block, random);
            Assert.Equal(Block + 1, e.Tokens.Length);
            Assert.Equal(block[..Block], e.Tokens[1..]);                         // the mode token, then the text
            Assert.InRange(e.TargetsFrom, 2, Block - 1);                         // 1 … N − 3 text tokens of context, at least two targets
            Assert.Equal(e.TargetsFrom, e.AttentionPrefix);
            prefixes.Add(e.TargetsFrom);
        }

        Assert.True(prefixes.Count > Block / 2, "the prefix length should be drawn over its range");

        // in a batch: labels −100 exactly where the target lies in the prefix, the prefix attends both ways
        using var scope = torch.NewDisposeScope();
        using var batch = objective.Build([Distinct(0), Distinct(100)], step: 0, steps: 10, seed: 1);
        Assert.Null(batch.AttentionMask);
        var labels = batch.Labels.data<long>().ToArray();
        var ids = batch.InputIds.data<long>().ToArray();
        var prefix = batch.PrefixLength!.data<long>().ToArray();
        for (int r = 0; r < 2; r++)
        {
            for (int j = 0; j < Block; j++)
            {
                long expected = j + 1 >= prefix[r] ? (j + 1 < Block ? ids[r * Block + j + 1] : Distinct(r * 100)[Block - 1]) : -100;
                Assert.Equal(expected, labels[r * Block + j]);
            }
        }
    }

    [Fact]
    public void The_model_loss_of_a_prefix_batch_counts_only_the_targets()
    {
        using var scope = torch.NewDisposeScope();
        var s = new ObjectiveOptions { Name = "s", Kind = ObjectiveKind.PrefixLm, ModeToken = "[S]" };
        var mixture = Single(s);
        var tokenizer = new SpecialTokensTokenizer(new CharTokenizer("abcdefghij"), TrainingObjective.SpecialTokens(mixture, 15));
        var objective = new TrainingObjective(mixture, tokenizer, 15);
        torch.manual_seed(2);
        using var model = new MoeForCausalLM(new MoeModelOptions { VocabSize = tokenizer.VocabSize, ContextLength = 15, HiddenSize = 16, NumHeads = 2, NumLayers = 1, NumExperts = 4, TopK = 2, Dropout = 0 });
        model.eval();
        var random = new Random(1);
        var blocks = Enumerable.Range(0, 3).Select(_ => Enumerable.Range(0, 16).Select(_ => (long)random.Next(10)).ToArray()).ToList();
        using var batch = objective.Build(blocks, step: 4, steps: 10, seed: 9);
        using var noGrad = torch.no_grad();
        using var output = model.call(new CausalLMInput(batch.InputIds, batch.Labels, AttentionMask: batch.AttentionMask, PrefixLength: batch.PrefixLength));

        // independent reference: −log softmax at each (row, position) whose next token lies after that row's prefix
        var logProbs = output.Logits.log_softmax(-1);
        var ids = batch.InputIds.data<long>().ToArray();
        var prefix = batch.PrefixLength!.data<long>().ToArray();
        double sum = 0;
        int count = 0;
        for (int r = 0; r < 3; r++)
        {
            long[] sequence = [.. ids[(r * 15)..(r * 15 + 15)], blocks[r][14]]; // the last target is the block's token after the input
            for (int j = 0; j < 15; j++)
            {
                if (j + 1 < prefix[r]) continue;
                sum -= logProbs[r, j, sequence[j + 1]].item<float>();
                count++;
            }
        }

        Assert.Equal(sum / count, output.LmLoss!.item<float>(), 4);
    }

    [Fact]
    public void The_mixture_follows_its_stages_and_weights()
    {
        var mixture = new ObjectiveMixtureOptions
        {
            Objectives =
            [
                new() { Name = "r", Kind = ObjectiveKind.SpanCorruption, MeanSpanLength = 3, CorruptionRate = 0.15, ModeToken = "[R]" },
                new() { Name = "s", Kind = ObjectiveKind.PrefixLm, ModeToken = "[S]" },
                new() { Name = "causal", Kind = ObjectiveKind.Causal },
            ],
            Schedule =
            [
                new() { From = 0, Weights = new() { ["r"] = 1, ["s"] = 3 } },
                new() { From = 0.5, Weights = new() { ["causal"] = 1 } },
            ],
        };
        var objective = Objective(mixture);
        var blocks = Enumerable.Range(0, 400).Select(i => Distinct(i % 500)).ToList();
        using var scope = torch.NewDisposeScope();
        using (var early = objective.Build(blocks, step: 10, steps: 100, seed: 1))
        {
            double s = early.Objectives.Count(o => o == "s") / 400.0;
            Assert.InRange(s, 0.70, 0.80);                    // 3 : 1
            Assert.DoesNotContain("causal", early.Objectives);
        }

        using (var late = objective.Build(blocks, step: 50, steps: 100, seed: 1))
        {
            Assert.All(late.Objectives, o => Assert.Equal("causal", o));
            Assert.Null(late.AttentionMask);
            Assert.Null(late.PrefixLength);                   // all causal: the model's fast path
            var ids = late.InputIds.data<long>().ToArray();
            var labels = late.Labels.data<long>().ToArray();
            Assert.Equal(blocks[3][..Block], ids[(3 * Block)..(4 * Block)]);
            Assert.Equal(blocks[3][1..], labels[(3 * Block)..(4 * Block)]);
        }

        // the same (seed, step) draws the same batch; another step draws another
        using var a = objective.Build(blocks[..8], step: 3, steps: 100, seed: 1);
        using var b = objective.Build(blocks[..8], step: 3, steps: 100, seed: 1);
        using var c = objective.Build(blocks[..8], step: 4, steps: 100, seed: 1);
        Assert.Equal(a.InputIds.data<long>().ToArray(), b.InputIds.data<long>().ToArray());
        Assert.NotEqual(a.InputIds.data<long>().ToArray(), c.InputIds.data<long>().ToArray());
    }

    [Theory]
    [InlineData(3, 0.25)] // 1 + 53 + 2 · 4 = 62 of 64 tokens
    [InlineData(1, 0.5)]  // 1 + 31 + 2 · 15 = 62
    [InlineData(2, 0.3)]  // 1 + 48 + 2 · 7 = 63: the model's 63 positions all real, the last without a target
    [InlineData(3, 0.15)] // 1 + 57 + 2 · 3 = 64: fills the block, no padding
    public void A_span_sequence_shorter_than_the_block_is_padded_out_of_attention_and_loss(double meanSpan, double rate)
    {
        var span = new ObjectiveOptions { Name = "x", Kind = ObjectiveKind.SpanCorruption, MeanSpanLength = meanSpan, CorruptionRate = rate, ModeToken = "[X]" };
        var objective = Objective(Single(span));
        int source = SpanCorruption.SourceLength(Block + 1, rate, meanSpan, 1);
        int length = 1 + source + 2 * SpanCorruption.Counts(source, rate, meanSpan).Spans; // by the layout, not by the code
        using var scope = torch.NewDisposeScope();
        using var batch = objective.Build([Distinct(0), Distinct(7)], step: 0, steps: 1, seed: 3);
        // the model reads T = 63 positions: all real when the sequence has at least T tokens
        if (length >= Block) Assert.Null(batch.AttentionMask);
        var real = batch.AttentionMask?.data<bool>().ToArray() ?? Enumerable.Repeat(true, 2 * Block).ToArray();
        var labels = batch.Labels.data<long>().ToArray();
        for (int r = 0; r < 2; r++)
        {
            Assert.Equal(Enumerable.Range(0, Block).Select(j => j < length), real[(r * Block)..((r + 1) * Block)]);
            Assert.All(Enumerable.Range(length - 1, Block - length + 1), j => Assert.Equal(-100, labels[r * Block + j])); // nothing to predict from the last real token on
            Assert.NotEqual(-100, labels[r * Block + length - 2]);
        }
    }

    [Fact]
    public void Ul2_needs_its_special_tokens_and_names_what_is_missing()
    {
        var ul2 = ObjectiveMixtureOptions.Ul2();
        var tokens = TrainingObjective.SpecialTokens(ul2, Block);
        Assert.Equal(["[R]", "[X]", "[S]"], tokens.Take(3));
        // the most spans any denoiser fits in 64 tokens: X with mean span 3 at 50%
        int spans = SpanCorruption.Counts(SpanCorruption.SourceLength(Block + 1, 0.5, 3, 1), 0.5, 3).Spans;
        Assert.Equal(spans, tokens.Count - 3);
        Assert.Equal($"<extra_id_{spans - 1}>", tokens[^1]);
        Assert.Contains("lacks the objective's special tokens [R], [X], [S]", Assert.Throws<ArgumentException>(() => new TrainingObjective(ul2, Base, Block)).Message);
        Assert.Empty(TrainingObjective.SpecialTokens(ObjectiveMixtureOptions.Causal(), Block));
        Assert.True(ObjectiveMixtureOptions.Causal().IsPlainCausal);
        Assert.False(ul2.IsPlainCausal);
    }

    [Fact]
    public void A_mixture_file_is_read_with_its_errors_named()
    {
        var parsed = ObjectiveMixtureOptions.Parse("""
            { "objectives": [ { "name": "r", "kind": "span_corruption", "mean_span_length": 8, "corruption_rate": 0.15, "mode_token": "[R]" },
                              { "name": "causal", "kind": "causal" } ],
              "schedule": [ { "from": 0, "weights": { "r": 1 } }, { "from": 0.75, "weights": { "causal": 1 } } ] }
            """);
        Assert.Equal(8, parsed.Objectives[0].MeanSpanLength);
        Assert.Equal(ObjectiveKind.Causal, parsed.Objectives[1].Kind);
        Assert.Equal("causal", parsed.StageAt(0.8).Weights.Keys.Single());
        Assert.Equal("r", parsed.StageAt(0.74).Weights.Keys.Single());
        Assert.Equal(7, ObjectiveMixtureOptions.Parse("ul2").Schedule[0].Weights.Count(w => w.Value > 0));

        Assert.Contains("objective.schedule[0].weights = q is invalid", Assert.Throws<InvalidDataException>(() => ObjectiveMixtureOptions.Parse(
            """{ "objectives": [ { "name": "causal", "kind": "causal" } ], "schedule": [ { "from": 0, "weights": { "q": 1 } } ] }""")).Message);
        Assert.Contains("objective.objectives[0].corruption_rate = 1.5 is invalid", Assert.Throws<InvalidDataException>(() => ObjectiveMixtureOptions.Parse(
            """{ "objectives": [ { "name": "r", "kind": "span_corruption", "corruption_rate": 1.5 } ], "schedule": [ { "from": 0, "weights": { "r": 1 } } ] }""")).Message);
        Assert.Contains("objective.schedule[0].from = 0.2 is invalid", Assert.Throws<InvalidDataException>(() => ObjectiveMixtureOptions.Parse(
            """{ "objectives": [ { "name": "causal", "kind": "causal" } ], "schedule": [ { "from": 0.2, "weights": { "causal": 1 } } ] }""")).Message);
        Assert.Contains("mean_span", Assert.Throws<InvalidDataException>(() => ObjectiveMixtureOptions.Parse(
            """{ "objectives": [ { "name": "r", "kind": "span_corruption", "mean_span": 3 } ], "schedule": [] }""")).Message);
        Assert.Contains("is not causal, ul2", Assert.Throws<InvalidDataException>(() => ObjectiveMixtureOptions.Parse("no-such-file.json")).Message);
    }

    [Fact]
    public void The_trainer_trains_on_a_mixture_and_checks_it_fits_the_model()
    {
        string dir = Directory.CreateTempSubdirectory("yinghub-ul2-").FullName;
        try
        {
            var (corpus, chars) = TestCorpus.Open(dir, string.Concat(Enumerable.Repeat("the cat sat on the mat. ", 300)));
            using (corpus)
            {
                var mixture = ObjectiveMixtureOptions.Ul2();
                var tokenizer = new SpecialTokensTokenizer(chars, TrainingObjective.SpecialTokens(mixture, 16));
                var (train, validation) = BlockSampler.Split(corpus, blockSize: 16, seed: 1);
                torch.manual_seed(7);
                using var model = new MoeForCausalLM(new MoeModelOptions
                {
                    VocabSize = tokenizer.VocabSize, ContextLength = 16, HiddenSize = 32, NumHeads = 2, NumLayers = 2, NumExperts = 4, TopK = 2, ExpertMultiplier = 2, Dropout = 0,
                });
                var options = new TrainerOptions { Steps = 30, BatchSize = 8, LearningRate = 3e-3, MinLearningRate = 3e-4, WarmupSteps = 0, LogInterval = 10, EvalInterval = 30, EvalBatches = 2, PeakFlopsPerSecond = 1e11 };
                using var trainer = new Trainer(model, train, validation, options) { Objective = new TrainingObjective(mixture, tokenizer, 16) };
                var losses = new List<double>();
                trainer.Progress += p => losses.Add(p.TrainLoss);
                var result = trainer.Run();
                Assert.Equal(30, result.Steps);
                Assert.All(losses, l => Assert.True(double.IsFinite(l)));
                Assert.True(losses[^1] < losses[0], $"the objective's loss should fall: {string.Join(", ", losses)}");

                // a model whose vocabulary stops before the special tokens, and token masking, are refused
                using var small = new MoeForCausalLM(new MoeModelOptions { VocabSize = chars.VocabSize, ContextLength = 16, HiddenSize = 16, NumHeads = 2, NumLayers = 1, NumExperts = 4, TopK = 2 });
                using var other = new Trainer(small, train, validation, options);
                Assert.Contains("vocabulary is [0, " + chars.VocabSize + ")", Assert.Throws<ArgumentException>(() => other.Objective = new TrainingObjective(mixture, tokenizer, 16)).Message);
                var masking = new TrainerOptions { Steps = 1, BatchSize = 2, EvalBatches = 1, TokenMasking = new TokenMaskingOptions { MaskTokenId = 0 } };
                using var masked = new Trainer(model, train, validation, masking);
                Assert.Contains("TokenMasking", Assert.Throws<ArgumentException>(() => masked.Objective = new TrainingObjective(mixture, tokenizer, 16)).Message);
                Assert.Contains("blocks of 20", Assert.Throws<ArgumentException>(() => trainer.Objective = new TrainingObjective(mixture, new SpecialTokensTokenizer(chars, TrainingObjective.SpecialTokens(mixture, 20)), 20)).Message);
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
