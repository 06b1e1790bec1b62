using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Training.Analysis;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Tests.Analysis;

/// <summary>
/// The recorder and the report on real models whose router is set by hand: the router's input is the embedding alone
/// (attention's output projection is zero), the embedding is one-hot (scaled) at a chosen hidden unit, and gate row e
/// reads unit e, so the top-1 expert of the first MoE layer is that unit. Later layers see the first one's output too,
/// which still depends on the token alone (or the position alone).
/// </summary>
public sealed class RoutingRecorderTests
{
    private const int Vocab = 24, Context = 16, Hidden = 16, Experts = 4;

    private static MoeForCausalLM Model(Func<long, int>? expertOfToken, Func<long, int>? expertOfPosition, int topK = 1)
    {
        torch.manual_seed(3);
        var model = new MoeForCausalLM(new MoeModelOptions
        {
            VocabSize = Vocab, ContextLength = Context, HiddenSize = Hidden, NumHeads = 2, NumLayers = 2, NumExperts = Experts, TopK = topK,
        });
        using var noGrad = torch.no_grad();
        foreach (var (name, tensor) in model.state_dict())
        {
            if (name.Contains("o_proj") || name.Contains("gate.bias")) tensor.zero_();
            else if (name.EndsWith("layernorm.weight", StringComparison.Ordinal)) tensor.fill_(1);
            else if (name.EndsWith("layernorm.bias", StringComparison.Ordinal)) tensor.zero_();
            else if (name.EndsWith("gate.weight", StringComparison.Ordinal))
            {
                tensor.zero_();                                                   // (E, C): expert e reads unit e
                for (int e = 0; e < Experts; e++) tensor[e, e] = 1;
            }
            else if (name == "embed_tokens.weight") OneHot(tensor, expertOfToken);
            else if (name == "embed_positions.weight") OneHot(tensor, expertOfPosition);
        }

        model.eval();
        return model;
    }

    /// <summary>Row r becomes 10 at unit unitOf(r) and 0 elsewhere (all zero without a rule).</summary>
    private static void OneHot(Tensor weight, Func<long, int>? unitOf)
    {
        weight.zero_();
        if (unitOf is null) return;
        for (long r = 0; r < weight.size(0); r++) weight[r, unitOf(r)] = 10;
    }

    private static long[] RandomTokens(int count, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => (long)random.Next(Vocab)).ToArray();
    }

    [Fact]
    public void A_router_keyed_on_the_token_id_is_fully_specialized_far_above_the_shuffled_baseline()
    {
        using var model = Model(expertOfToken: v => (int)(v % Experts), expertOfPosition: null, topK: 2);
        long[] tokens = RandomTokens(64 * Context, seed: 1);

        var recording = RoutingRecorder.Record(model, tokens, new RoutingRecorderOptions { Tokens = tokens.Length, BatchSize = 5 }); // 13 forwards, the last of 4 blocks
        var report = RoutingReport.Build(recording, early: null, capacityFactor: null, new RoutingAnalysisOptions());

        Assert.Equal(tokens, recording.TokenIds);
        Assert.Equal(Enumerable.Range(0, tokens.Length).Select(i => i % Context), recording.Positions);
        Assert.Equal([0, 1], recording.Layers.Select(l => l.Layer));
        Assert.Equal(tokens.Select(v => (int)(v % Experts)), recording.TopOne(0)); // the reference: expert = id mod E
        Assert.Equal(2, report.Layers.Count);
        foreach (var layer in report.Layers)
        {
            Assert.Equal(1.0, layer.Specialization, 12);
            Assert.True(layer.ShuffledSpecialization < 0.5, $"baseline {layer.ShuffledSpecialization}");
            Assert.Equal(0, layer.DroppedShare);
        }
    }

    [Fact]
    public void A_router_keyed_on_the_position_is_near_the_shuffled_baseline()
    {
        using var model = Model(expertOfToken: null, expertOfPosition: p => (int)(p % Experts));
        long[] tokens = RandomTokens(64 * Context, seed: 2);

        var recording = RoutingRecorder.Record(model, tokens, new RoutingRecorderOptions { Tokens = tokens.Length, BatchSize = 5 });
        var report = RoutingReport.Build(recording, null, null, new RoutingAnalysisOptions());

        Assert.Equal(recording.Positions.Select(p => p % Experts), recording.TopOne(0));
        foreach (var layer in report.Layers)
        {
            Assert.True(layer.Specialization < 0.5, $"specialization {layer.Specialization}");
            Assert.True(Math.Abs(layer.Specialization - layer.ShuffledSpecialization) < 0.05,
                $"specialization {layer.Specialization} vs baseline {layer.ShuffledSpecialization}");
        }

        Assert.Equal([0.25, 0.25, 0.25, 0.25], report.Layers[0].Load); // positions cycle through the experts evenly
        Assert.Equal(0, report.Layers[0].LoadCv, 12);
    }

    [Fact]
    public void Under_a_capacity_factor_the_late_positions_are_dropped_and_land_in_the_last_buckets()
    {
        // every token to expert 0: capacity ceil(1.0 · N · k / E) = N / 4 keeps the first quarter of the positions
        // (ranked by position across the batch), so buckets of 4 positions read 0, 1, 1, 1
        using var model = Model(expertOfToken: null, expertOfPosition: _ => 0);
        long[] tokens = RandomTokens(16 * Context, seed: 3);

        var recording = RoutingRecorder.Record(model, tokens, new RoutingRecorderOptions { Tokens = tokens.Length, BatchSize = 8, CapacityFactor = 1.0 });
        var report = RoutingReport.Build(recording, null, 1.0, new RoutingAnalysisOptions { PositionBuckets = 4 });

        Assert.False(model.Options.CapacityInEvaluation); // the analysed model itself is left as it was
        for (int i = 0; i < recording.Count; i++) Assert.Equal(recording.Positions[i] >= Context / 4, recording.Layers[0].Dropped[i]);
        var buckets = report.Layers[0].DroppedByPosition;
        Assert.Equal([0.0, 1, 1, 1], buckets.Select(b => b.DroppedShare));
        Assert.Equal(0.75, report.Layers[0].DroppedShare, 12);
        Assert.Equal([1.0, 0, 0, 0], report.Layers[0].Load);

        var again = RoutingRecorder.Record(model, tokens, new RoutingRecorderOptions { Tokens = tokens.Length, BatchSize = 8 }); // no capacity: the model's own evaluation
        Assert.All(again.Layers, l => Assert.DoesNotContain(true, l.Dropped));
        Assert.Equal(recording.Layers[0].Experts, again.Layers[0].Experts);
    }

    [Fact]
    public void Recording_leaks_no_tensor()
    {
        using var model = Model(expertOfToken: v => (int)(v % Experts), expertOfPosition: null, topK: 2);
        long[] tokens = RandomTokens(4 * Context, seed: 6);
        var options = new RoutingRecorderOptions { Tokens = tokens.Length, BatchSize = 3 };
        RoutingRecorder.Record(model, tokens, options); // warm up: the model keeps inference views of its experts after its first evaluation forward
        DisposeScopeManager.Statistics.Reset();
        RoutingRecorder.Record(model, tokens, options);
        RoutingTracer.Trace(model, tokens[..(Context + 3)], start: 2);
        Assert.Equal(0, DisposeScopeManager.Statistics.ThreadTotalLiveCount);

        // under a capacity factor the recorder builds (and disposes) a copy of the model: no more than building one leaves counted
        DisposeScopeManager.Statistics.Reset();
        new MoeForCausalLM(model.Options).Dispose();
        long building = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        DisposeScopeManager.Statistics.Reset();
        RoutingRecorder.Record(model, tokens, options with { CapacityFactor = 0.5 });
        Assert.Equal(building, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void The_tracer_routes_every_token_after_the_start_also_beyond_the_context()
    {
        using var model = Model(expertOfToken: v => (int)(v % Experts), expertOfPosition: null, topK: 2);
        long[] tokens = RandomTokens(Context + 5, seed: 7);

        var trace = RoutingTracer.Trace(model, tokens, start: 3);

        Assert.Equal(Enumerable.Range(3, Context + 2), trace.Select(t => t.Position));
        Assert.Equal(tokens[3..], trace.Select(t => t.TokenId));
        foreach (var token in trace)
        {
            Assert.Equal([0, 1], token.Layers.Select(l => l.Layer));
            Assert.Equal((int)(token.TokenId % Experts), token.Layers[0].Experts[0]); // the reference: expert = id mod E
            Assert.Equal(2, token.Layers[0].Experts.Distinct().Count());
            Assert.Equal(1.0, token.Layers[0].Weights.Sum(), 5);                       // normalised top-2 gates
            Assert.True(token.Layers[0].Weights[0] >= token.Layers[0].Weights[1]);
        }
    }

    [Fact]
    public void Early_agreement_is_one_against_itself_and_chance_for_an_unrelated_router()
    {
        using var byToken = Model(expertOfToken: v => (int)(v % Experts), expertOfPosition: null);
        using var byPosition = Model(expertOfToken: null, expertOfPosition: p => (int)(p % Experts));
        long[] tokens = RandomTokens(32 * Context, seed: 4);
        var options = new RoutingRecorderOptions { Tokens = tokens.Length };
        var final = RoutingRecorder.Record(byToken, tokens, options);

        var same = RoutingReport.Build(final, RoutingRecorder.Record(byToken, tokens, options), null, new RoutingAnalysisOptions());
        var other = RoutingReport.Build(final, RoutingRecorder.Record(byPosition, tokens, options), null, new RoutingAnalysisOptions());

        Assert.All(same.Layers, l => Assert.Equal(1.0, l.EarlyAgreement));
        Assert.All(other.Layers, l => Assert.True(Math.Abs(l.EarlyAgreement!.Value - l.ChanceAgreement!.Value) < 0.05, $"{l.EarlyAgreement} vs {l.ChanceAgreement}"));
        Assert.Throws<ArgumentException>(() => RoutingReport.Build(final, RoutingRecorder.Record(byToken, tokens.Reverse().ToArray(), options), null, new RoutingAnalysisOptions()));
    }

    [Fact]
    public void The_writer_produces_every_file_and_the_top_token_table()
    {
        using var model = Model(expertOfToken: v => (int)(v % Experts), expertOfPosition: null, topK: 2);
        long[] tokens = RandomTokens(8 * Context, seed: 5);
        var recording = RoutingRecorder.Record(model, tokens, new RoutingRecorderOptions { Tokens = tokens.Length });
        var report = RoutingReport.Build(recording, recording, null, new RoutingAnalysisOptions { TopTokens = 3 });
        string dir = Directory.CreateTempSubdirectory("yinghub-routing-").FullName;
        try
        {
            var files = RoutingReportWriter.Write(dir, report, tokenizer: null);

            Assert.Equal(6, files.Count);
            Assert.All(files, f => Assert.True(new FileInfo(f).Length > 0, f));
            Assert.Equal(files.Count, Directory.GetFiles(dir).Length); // no temporary file left behind
            // expert 1 takes ids 1, 5, 9, ... only (top-1); each id goes there every time
            var top = report.Layers[0].TopTokens[1];
            Assert.Equal(3, top.Count);
            Assert.All(top, t => Assert.Equal(1, t.TokenId % Experts));
            Assert.All(top, t => Assert.Equal(1.0, t.Share));
            var expected = tokens.Where(v => v % Experts == 1).GroupBy(v => v).Select(g => (Token: g.Key, Count: (long)g.Count()))
                .OrderByDescending(g => g.Count).ThenBy(g => g.Token).Take(3);                  // the reference: counted here
            Assert.Equal(expected, top.Select(t => (t.TokenId, t.Count)));
            string md = File.ReadAllText(Path.Combine(dir, RoutingReportWriter.TopTokensFile));
            Assert.Contains("## Layer 1", md);
            Assert.Contains($"#{top[0].TokenId} ×{top[0].Count} (100%)", md);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void The_tracer_routes_a_token_beyond_the_context_in_the_window_that_ends_with_it()
    {
        // routing by position within the forward: a token at p < T sits at p; a later one ends its own window, at T - 1
        using var model = Model(expertOfToken: null, expertOfPosition: p => (int)(p % Experts));
        long[] tokens = RandomTokens(Context + 6, seed: 8);

        var trace = RoutingTracer.Trace(model, tokens, start: 0);

        Assert.Equal(tokens.Select((_, p) => (p < Context ? p : Context - 1) % Experts), trace.Select(t => t.Layers[0].Experts[0]));
    }

    [Fact]
    public void Bad_options_and_short_input_are_refused()
    {
        using var model = Model(v => 0, null);
        Assert.Contains("Tokens = 0", Assert.Throws<ArgumentException>(() => RoutingRecorder.Record(model, [1, 2], new RoutingRecorderOptions { Tokens = 0 })).Message);
        Assert.Contains("CapacityFactor = -1", Assert.Throws<ArgumentException>(() => RoutingRecorder.Record(model, [1, 2], new RoutingRecorderOptions { CapacityFactor = -1 })).Message);
        Assert.Contains("no whole block of 16", Assert.Throws<ArgumentException>(() => RoutingRecorder.Record(model, RandomTokens(15, 1), new RoutingRecorderOptions())).Message);
        Assert.Contains("exceeds the model's context length", Assert.Throws<ArgumentException>(() => RoutingRecorder.Record(model, RandomTokens(64, 1), new RoutingRecorderOptions { BlockLength = 32 })).Message);
    }
}
