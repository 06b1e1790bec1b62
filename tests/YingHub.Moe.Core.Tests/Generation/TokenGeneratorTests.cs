using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Generation;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tests.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Generation;

public class TokenGeneratorTests
{
    /// <summary>Greedy decoding by hand: a full forward over the last window for every token.</summary>
    private static long[] NaiveGreedy(MoeForCausalLM model, long[] prompt, int n)
    {
        var tokens = prompt.ToList();
        using var _ = torch.no_grad();
        for (int i = 0; i < n; i++)
        {
            using var scope = torch.NewDisposeScope();
            var window = tokens.Skip(Math.Max(0, tokens.Count - model.Options.ContextLength)).ToArray();
            var logits = model.call(new CausalLMInput(torch.tensor(window, 1, window.Length))).Logits;
            tokens.Add(logits[0, -1].argmax().item<long>());
        }

        return tokens.Skip(prompt.Length).ToArray();
    }

    [Theory]
    [InlineData(PositionEncoding.Learned)]
    [InlineData(PositionEncoding.Rope)]
    public void Greedy_with_the_cache_equals_greedy_by_full_recomputation_within_the_context(PositionEncoding positions)
    {
        torch.manual_seed(21);
        using var model = new MoeForCausalLM(Tiny.Options(o => { o.Positions = positions; o.ContextLength = 16; }));
        model.eval();
        long[] prompt = [3, 1, 4];
        var cached = new TokenGenerator(model).Generate(prompt, new SamplingOptions { Greedy = true, MaxNewTokens = 13 });
        var recomputed = new TokenGenerator(model).Generate(prompt, new SamplingOptions { Greedy = true, MaxNewTokens = 13, UseCache = false });
        var naive = NaiveGreedy(model, prompt, 13);
        Assert.Equal(naive, recomputed);
        Assert.Equal(naive, cached);
    }

    /// <summary>Greedy decoding by hand with the prompt as a bidirectional prefix: a full forward per token (within the context).</summary>
    private static long[] NaivePrefixGreedy(MoeForCausalLM model, long[] prompt, int n)
    {
        var tokens = prompt.ToList();
        using var _ = torch.no_grad();
        for (int i = 0; i < n; i++)
        {
            using var scope = torch.NewDisposeScope();
            var logits = model.call(new CausalLMInput(torch.tensor(tokens.ToArray(), 1, tokens.Count), PrefixLength: torch.tensor(new long[] { prompt.Length }))).Logits;
            tokens.Add(logits[0, -1].argmax().item<long>());
        }

        return tokens.Skip(prompt.Length).ToArray();
    }

    [Theory]
    [InlineData(PositionEncoding.Learned)]
    [InlineData(PositionEncoding.Rope)]
    public void The_prompt_as_a_prefix_decodes_as_full_prefix_forwards_with_and_without_the_cache(PositionEncoding positions)
    {
        torch.manual_seed(22);
        using var model = new MoeForCausalLM(Tiny.Options(o => { o.Positions = positions; o.ContextLength = 16; }));
        model.eval();
        using (torch.no_grad())
            foreach (var p in model.parameters()) p.mul_(4); // sharper attention and logits: an untrained model's argmax then depends on what it attends to
        long[] longPrompt = [3, 1, 4, 1, 5, 9], shortPrompt = [2, 7];
        var options = new SamplingOptions { Greedy = true, MaxNewTokens = 9, PromptAsPrefix = true };
        var expectedLong = NaivePrefixGreedy(model, longPrompt, 9);
        Assert.NotEqual(NaiveGreedy(model, longPrompt, 9), expectedLong); // the prefix changes what the model says here
        Assert.Equal(expectedLong, new TokenGenerator(model).Generate(longPrompt, options));
        options.UseCache = false;
        Assert.Equal(expectedLong, new TokenGenerator(model).Generate(longPrompt, options));

        // a batch of prompts of different lengths: each row as alone (left padding inside the prefix is masked)
        options.UseCache = true;
        var batch = new TokenGenerator(model).GenerateBatch([longPrompt, shortPrompt], options);
        Assert.Equal(expectedLong, batch[0]);
        Assert.Equal(NaivePrefixGreedy(model, shortPrompt, 9), batch[1]);
    }

    [Fact]
    public void Past_the_context_the_cache_slides_and_decoding_goes_on()
    {
        torch.manual_seed(22);
        using var model = new MoeForCausalLM(Tiny.Options(o => o.ContextLength = 8));
        var tokens = new TokenGenerator(model).Generate([1, 2, 3], new SamplingOptions { MaxNewTokens = 40, Seed = 5 });
        Assert.Equal(40, tokens.Length);
        Assert.All(tokens, t => Assert.InRange(t, 0, 18));
        // a prompt longer than the context is cropped to its last window, not rejected
        Assert.Single(new TokenGenerator(model).Generate(Enumerable.Range(0, 20).Select(i => (long)(i % 19)).ToArray(), new SamplingOptions { MaxNewTokens = 1 }));
    }

    [Theory]
    [InlineData(PositionEncoding.Learned)]
    [InlineData(PositionEncoding.Rope)]
    public void Past_the_context_every_cached_step_has_the_logits_of_a_fresh_forward_over_the_window_the_cache_holds(PositionEncoding positions)
    {
        torch.manual_seed(24);
        const int context = 8, keep = 4, prompt = 3, steps = 30;
        using var model = new MoeForCausalLM(Tiny.Options(o => { o.ContextLength = context; o.Positions = positions; }));
        model.eval();
        var seen = new List<(long[] Tokens, Tensor Logits)>();
        var options = new SamplingOptions { MaxNewTokens = steps, Seed = 8, SlideKeep = keep / (double)context };
        options.LogitsProcessors.Add((logits, tokens) =>
        {
            seen.Add((tokens[0].ToArray(), logits[0].clone().DetachFromDisposeScope()));
            return logits;
        });
        long[] generated = new TokenGenerator(model).Generate([1, 2, 3], options);
        Assert.Equal(steps, seen.Count);

        // independent reference: the window the cache holds grows from the prompt by one per token; when it is full the
        // next step starts again from the last `keep` tokens. Each step's logits must equal a fresh forward over it.
        int window = prompt, slides = 0;
        using var noGrad = torch.no_grad();
        for (int i = 0; i < steps; i++)
        {
            if (i > 0)
            {
                if (window == context) { window = keep; slides++; }
                else window++;
            }

            long[] all = seen[i].Tokens;
            Assert.Equal(prompt + i, all.Length);
            var ids = torch.tensor(all[^window..], 1, window);
            var fresh = model.call(new CausalLMInput(ids)).Logits[0, -1];
            Tiny.AssertClose(fresh, seen[i].Logits, atol: 1e-5);
        }

        Assert.True(slides >= 5, $"only {slides} slides");
        Assert.Equal(seen.Skip(1).Select(s => s.Tokens[^1]), generated[..^1]);
        foreach (var (_, logits) in seen) logits.Dispose();
    }

    [Fact]
    public void The_same_seed_gives_the_same_tokens()
    {
        torch.manual_seed(23);
        using var model = new MoeForCausalLM(Tiny.Options());
        var options = new SamplingOptions { MaxNewTokens = 20, Seed = 99, Temperature = 1.5, TopK = 10 };
        var a = new TokenGenerator(model).Generate([0], options);
        var b = new TokenGenerator(model).Generate([0], options);
        var c = new TokenGenerator(model).Generate([0], new SamplingOptions { MaxNewTokens = 20, Seed = 100, Temperature = 1.5, TopK = 10 });
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
    }

    [Fact]
    public void A_batch_decodes_each_sequence_as_alone_and_stops_each_at_its_stop_sequence()
    {
        torch.manual_seed(24);
        using var model = new MoeForCausalLM(Tiny.Options(o => o.ContextLength = 16));
        var generator = new TokenGenerator(model);
        long[][] prompts = [[1, 2], [5, 6], [7, 7]];
        var greedy = new SamplingOptions { Greedy = true, MaxNewTokens = 20 };
        var singles = prompts.Select(p => generator.Generate(p, greedy)).ToArray();
        var batch = generator.GenerateBatch(prompts, greedy);
        for (int b = 0; b < 3; b++) Assert.Equal(singles[b], batch[b]);

        // stop right after the first sequence's 4th token (a single-token stop that the others may never produce)
        long stop = singles[0][3];
        var stopped = generator.GenerateBatch(prompts, new SamplingOptions { Greedy = true, MaxNewTokens = 20, StopSequences = [[stop]] });
        Assert.Equal(singles[0][..(Array.IndexOf(singles[0], stop) + 1)], stopped[0]);
        for (int b = 1; b < 3; b++)
        {
            int at = Array.IndexOf(singles[b], stop);
            Assert.Equal(at < 0 ? singles[b] : singles[b][..(at + 1)], stopped[b]);
        }

        // a stopped sequence leaves the batch: later steps decode only the others. A processor makes sequence 0 (the one
        // whose prompt starts with 1) produce token 18 at its 4th step and bans 18 everywhere else.
        var rows = new List<long>();
        var forced = new SamplingOptions { Greedy = true, MaxNewTokens = 20, StopSequences = [[18]] };
        forced.LogitsProcessors.Add((logits, seqs) =>
        {
            rows.Add(logits.size(0));
            Assert.Equal(logits.size(0), seqs.Count);
            for (int r = 0; r < seqs.Count; r++)
                logits[r, 18] = torch.tensor(seqs[r][0] == 1 && seqs[r].Count == 2 + 3 ? 1e9f : float.NegativeInfinity);
            return logits;
        });
        var alone = prompts.Select(p => generator.Generate(p, forced)).ToArray();
        rows.Clear();
        var compacted = generator.GenerateBatch(prompts, forced);
        for (int b = 0; b < 3; b++) Assert.Equal(alone[b], compacted[b]);
        Assert.Equal(4, compacted[0].Length);
        Assert.Equal(Enumerable.Repeat(3L, 4).Concat(Enumerable.Repeat(2L, 16)), rows); // 3 rows for 4 steps, then 2

        // a two-token stop sequence
        var pair = new[] { singles[1][5], singles[1][6] };
        var two = generator.Generate(prompts[1], new SamplingOptions { Greedy = true, MaxNewTokens = 20, StopSequences = [pair] });
        Assert.Equal(pair, two[^2..]);
        Assert.True(two.Length <= 7);
        Assert.Throws<ArgumentException>(() => generator.GenerateBatch([[1, 2], []], greedy));
    }

    [Theory]
    [InlineData(PositionEncoding.Learned, false)]
    [InlineData(PositionEncoding.Rope, false)]
    [InlineData(PositionEncoding.Rope, true)]
    public void Prompts_of_different_lengths_decode_each_as_alone(PositionEncoding positions, bool penalties)
    {
        torch.manual_seed(25);
        using var model = new MoeForCausalLM(Tiny.Options(o => { o.ContextLength = 24; o.Positions = positions; }));
        var generator = new TokenGenerator(model);
        long[][] prompts = [[1, 2, 3, 4, 5, 6], [5], [7, 7, 3]];
        var greedy = new SamplingOptions { Greedy = true, MaxNewTokens = 12, RepetitionPenalty = penalties ? 1.5 : 1, FrequencyPenalty = penalties ? 0.5 : 0 };
        var singles = prompts.Select(p => generator.Generate(p, greedy)).ToArray();
        var batch = generator.GenerateBatch(prompts, greedy);
        for (int b = 0; b < 3; b++) Assert.Equal(singles[b], batch[b]);
        var recomputed = generator.GenerateBatch(prompts, new SamplingOptions { Greedy = true, MaxNewTokens = 12, UseCache = false,
            RepetitionPenalty = greedy.RepetitionPenalty, FrequencyPenalty = greedy.FrequencyPenalty });
        for (int b = 0; b < 3; b++) Assert.Equal(singles[b], recomputed[b]);
    }

    [Fact]
    public void A_padded_sequence_that_stops_leaves_the_batch_and_the_others_go_on_as_alone()
    {
        torch.manual_seed(26);
        using var model = new MoeForCausalLM(Tiny.Options(o => { o.ContextLength = 24; o.Positions = PositionEncoding.Rope; }));
        var generator = new TokenGenerator(model);
        long[][] prompts = [[1, 2, 3, 4, 5, 6], [5], [7, 7, 3]];
        // the shortest (most padded) sequence, the one whose prompt is [5], is made to produce 18 at its 3rd step; 18 is banned elsewhere
        var options = new SamplingOptions { Greedy = true, MaxNewTokens = 10, StopSequences = [[18]] };
        options.LogitsProcessors.Add((logits, seqs) =>
        {
            for (int r = 0; r < seqs.Count; r++)
                logits[r, 18] = torch.tensor(seqs[r][0] == 5 && seqs[r].Count == 1 + 2 ? 1e9f : float.NegativeInfinity);
            return logits;
        });
        var alone = prompts.Select(p => generator.Generate(p, options)).ToArray();
        var batch = generator.GenerateBatch(prompts, options);
        Assert.Equal(3, alone[1].Length);
        for (int b = 0; b < 3; b++) Assert.Equal(alone[b], batch[b]);
    }

    [Fact]
    public void Bad_prompts_and_options_are_rejected_with_the_value()
    {
        using var model = new MoeForCausalLM(Tiny.Options());
        var generator = new TokenGenerator(model);
        Assert.Contains("id 19", Assert.Throws<ArgumentException>(() => { generator.Generate([19], new SamplingOptions()); }).Message);
        Assert.Throws<ArgumentException>(() => { generator.Generate([], new SamplingOptions()); });
        Assert.Contains("TopP = 1.5", Assert.Throws<ArgumentException>(() => { generator.Generate([1], new SamplingOptions { TopP = 1.5 }); }).Message);
    }
}

public class LogitsProcessorsTests
{
    [Fact]
    public void Top_p_keeps_exactly_the_smallest_prefix_whose_mass_reaches_p()
    {
        using var scope = torch.NewDisposeScope();
        double[] probs = [0.05, 0.4, 0.1, 0.25, 0.2];
        Func<double, double> log = Math.Log; // sorted: 0.4, 0.25, 0.2, 0.1, 0.05
        var logits = torch.tensor(probs.Select(log).ToArray(), 1, 5).to(ScalarType.Float32);
        // cumulative 0.4, 0.65, 0.85, 0.95, 1: p = 0.6 is reached by {0.4, 0.25}; p = 0.7 needs 0.2 as well; p = 0.3
        // keeps only the top token (values away from the cumulative sums, so fp32 rounding cannot decide the result)
        foreach (var (p, keep) in new[] { (0.6, new[] { 1, 3 }), (0.7, new[] { 1, 3, 4 }), (0.3, new[] { 1 }), (0.9, new[] { 1, 2, 3, 4 }), (1.0, new[] { 0, 1, 2, 3, 4 }) })
        {
            var kept = LogitsProcessors.TopP(logits, p)[0].data<float>().ToArray()
                .Select((v, i) => (v, i)).Where(x => !float.IsNegativeInfinity(x.v)).Select(x => x.i).ToArray();
            Assert.Equal(keep, kept);
        }
    }

    [Fact]
    public void Repetition_penalty_lowers_a_repeated_tokens_probability_by_the_factor()
    {
        using var scope = torch.NewDisposeScope();
        var logits = torch.tensor(new[] { 2.0f, -1.0f, 0.5f, 3.0f }, 1, 4);
        var recent = torch.tensor(new long[] { 0, 1, 0 }, 1, 3);
        var penalised = LogitsProcessors.RepetitionPenalty(logits, recent, 2.0)[0].data<float>().ToArray();
        Assert.Equal(new[] { 1.0f, -2.0f, 0.5f, 3.0f }, penalised); // positive logit / 2, negative * 2, others untouched
        // the repeated token's probability really drops (a constant factor on every probability would change nothing)
        Assert.True(torch.tensor(penalised).softmax(0)[0].item<float>() < logits[0].softmax(0)[0].item<float>());
    }

    [Fact]
    public void Presence_and_frequency_penalties_subtract_per_token_and_per_occurrence()
    {
        using var scope = torch.NewDisposeScope();
        var logits = torch.tensor(new[] { 1f, 1f, 1f, 1f }, 1, 4);
        var recent = torch.tensor(new long[] { 2, 0, 2, 2 }, 1, 4);
        var out1 = LogitsProcessors.PresenceFrequencyPenalty(logits, recent, presence: 0.5, frequency: 0.25)[0].data<float>().ToArray();
        Assert.Equal(new[] { 1f - 0.5f - 0.25f, 1f, 1f - 0.5f - 0.75f, 1f }, out1);
    }

    [Fact]
    public void Min_p_keeps_tokens_with_at_least_p_times_the_top_probability()
    {
        using var scope = torch.NewDisposeScope();
        double[] probs = [0.5, 0.3, 0.15, 0.05];
        Func<double, double> log = Math.Log;
        var logits = torch.tensor(probs.Select(log).ToArray(), 1, 4).to(ScalarType.Float32);
        var kept = LogitsProcessors.MinP(logits, 0.25)[0].data<float>().ToArray().Select(v => !float.IsNegativeInfinity(v)).ToArray();
        Assert.Equal(new[] { true, true, true, false }, kept); // threshold 0.125: 0.15 stays, 0.05 goes
    }

    [Fact]
    public void Top_k_keeps_the_k_largest()
    {
        using var scope = torch.NewDisposeScope();
        var filtered = LogitsProcessors.TopK(torch.tensor(new[] { 1f, 5f, 3f, 4f }, 1, 4), 2)[0].data<float>().ToArray();
        Assert.Equal(new[] { float.NegativeInfinity, 5f, float.NegativeInfinity, 4f }, filtered);
    }

    [Fact]
    public void Cosine_annealing_goes_from_T_towards_its_floor()
    {
        var options = new SamplingOptions { Temperature = 0.8, AnnealTemperature = true }; // floor 0.1 · 0.8 = 0.08
        Assert.Equal(0.8, options.TemperatureAt(0, 10), 12);
        Assert.Equal(0.44, options.TemperatureAt(5, 10), 12);
        Assert.Equal(0.08 + 0.72 * (0.5 + 0.5 * Math.Cos(Math.PI * 0.9)), options.TemperatureAt(9, 10), 12);
    }
}

public class TextGeneratorTests
{
    private static (MoeForCausalLM Model, YingHub.Moe.Core.Tokenizers.CharTokenizer Tokenizer) Setup()
    {
        var tokenizer = YingHub.Moe.Core.Tokenizers.CharTokenizer.FromCorpus("abcdefghij \n");
        torch.manual_seed(25);
        var model = new MoeForCausalLM(Tiny.Options(o => o.VocabSize = tokenizer.VocabSize));
        return (model, tokenizer);
    }

    [Fact]
    public async Task A_streamed_result_equals_the_non_streamed_one()
    {
        var (model, tokenizer) = Setup();
        using var _ = model;
        var generator = new TextGenerator(model, tokenizer);
        var options = new SamplingOptions { MaxNewTokens = 30, Seed = 7, TopK = 5 };
        string whole = generator.Generate("abc", options);
        var pieces = new List<string>();
        await foreach (string piece in generator.StreamAsync("abc", options)) pieces.Add(piece);
        Assert.Equal(whole, string.Concat(pieces));
        Assert.Equal(30, whole.Length); // one character per token
        Assert.Equal(tokenizer.Decode(new TokenGenerator(model).Generate(tokenizer.Encode("abc").Select(i => (long)i).ToArray(), options).Select(t => (int)t).ToArray()), whole);
    }

    [Fact]
    public void Text_stop_sequences_end_generation_and_are_left_out()
    {
        var (model, tokenizer) = Setup();
        using var _ = model;
        var generator = new TextGenerator(model, tokenizer);
        var options = new SamplingOptions { MaxNewTokens = 40, Greedy = true };
        string full = generator.Generate("ab", options);
        string stop = full.Substring(10, 2);
        string expected = full[..full.IndexOf(stop, StringComparison.Ordinal)];
        Assert.Equal(expected, generator.Generate("ab", options, [stop]));
        Assert.Equal(full, generator.Generate("ab", options, ["zz-not-in-vocabulary"]));
    }

    [Fact]
    public async Task Cancellation_stops_the_stream()
    {
        var (model, tokenizer) = Setup();
        using var _ = model;
        using var cts = new CancellationTokenSource();
        var received = new List<string>();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (string piece in new TextGenerator(model, tokenizer).StreamAsync("a", new SamplingOptions { MaxNewTokens = 100 }, cancellationToken: cts.Token))
            {
                received.Add(piece);
                if (received.Count == 3) cts.Cancel();
            }
        });
        Assert.Equal(3, received.Count);
    }
}
