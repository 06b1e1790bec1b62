using TorchSharp;
using YingHub.Moe.Core.Generation;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Rl.Experience;
using YingHub.Moe.Rl.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Rl.Tests.Experience;

/// <summary>
/// The collector's batch against hand-made prompts: the layout (left-padded prompts, right-padded responses, a response
/// mask that ends at the stop token or the length), and every per-token quantity against a naive per-row computation.
/// </summary>
public class ExperienceCollectorTests
{
    private const int ResponseTokens = 6;
    private const double Temperature = 0.7;   // not 1, so a missing temperature in the log-probs shows
    private const long Seed = 5;
    private const char Stop = '.';
    private const double LogProbTolerance = 1e-4; // a padded batch and a row alone run the same maths in another order

    private static readonly string[] PromptTexts = ["a", "bcd", "ef", "gh.a", "c", "hhh", "d.", "abc"];

    /// <summary>The rollout of the test, and what the test needs to check it independently.</summary>
    private sealed record Rollout(MoeForCausalLM Model, FrozenReference Reference, ValueHead Head, List<IReadOnlyList<long>> Prompts,
        long[][] Responses, ExperienceBatch Batch, long StopId) : IDisposable
    {
        public void Dispose()
        {
            Batch.Dispose();
            Head.Dispose();
            Reference.Dispose();
            Model.Dispose();
        }
    }

    private static Rollout Collect()
    {
        var (model, tokenizer) = TinyPolicy.Create(seed: 3);
        var reference = FrozenReference.CopyOf(model);
        var head = new ValueHead(model.Options.HiddenSize);
        using (var generator = new torch.Generator(17))
        using (torch.no_grad())
        using (torch.NewDisposeScope())
        {
            // a value head that is not zero, so the values show which hidden state they read
            foreach (var p in head.parameters()) p.copy_(torch.randn(p.shape, generator: generator));
        }

        var prompts = PromptTexts.Select(t => (IReadOnlyList<long>)tokenizer.Encode(t).Select(i => (long)i).ToList()).ToList();
        long stopId = tokenizer.Encode(Stop.ToString())[0];
        var settings = new RolloutSettings(ResponseTokens, Temperature, Seed, [[stopId]]);
        // the responses as the generator samples them on its own (same seed, temperature and stop), independent of the batch's layout
        var responses = new TokenGenerator(model).GenerateBatch(prompts, new SamplingOptions
        {
            MaxNewTokens = ResponseTokens, Temperature = Temperature, Seed = Seed, StopSequences = [[stopId]],
        });
        var (batch, _) = new ExperienceCollector(model, head, reference, tokenizer, new LetterShare('e')).Collect(prompts, settings);
        return new Rollout(model, reference, head, prompts, responses, batch, stopId);
    }

    [Fact]
    public void The_batch_holds_left_padded_prompts_and_right_padded_responses_that_end_at_the_stop_token_or_the_length()
    {
        using var r = Collect();
        int b = r.Prompts.Count, p = r.Prompts.Max(x => x.Count), rr = r.Responses.Max(x => x.Length);
        // the seed gives both kinds of rows: some stop early, some run to the length
        Assert.Contains(r.Responses, x => x.Length < ResponseTokens);
        Assert.Contains(r.Responses, x => x.Length == ResponseTokens);
        Assert.Equal(b, r.Batch.Count);
        Assert.Equal(p, r.Batch.PromptColumns);
        Assert.Equal(rr, r.Batch.ResponseColumns);
        Assert.Equal([b, p + rr], r.Batch.Sequences.shape);

        long[] sequences = r.Batch.Sequences.data<long>().ToArray();
        bool[] attention = r.Batch.AttentionMask.data<bool>().ToArray();
        long[] tokens = r.Batch.ResponseTokens.data<long>().ToArray();
        bool[] responseMask = r.Batch.ResponseMask.data<bool>().ToArray();
        long[] lengths = r.Batch.ResponseLengths();
        for (int row = 0; row < b; row++)
        {
            var prompt = r.Prompts[row];
            var response = r.Responses[row];
            // a response ends at its first stop token, or has the full length without one
            int firstStop = Array.IndexOf(response, r.StopId);
            Assert.True(firstStop == response.Length - 1 || (firstStop < 0 && response.Length == ResponseTokens), $"row {row}: [{string.Join(", ", response)}]");

            int pad = p - prompt.Count;
            var expected = Enumerable.Repeat(0L, pad).Concat(prompt).Concat(response).Concat(Enumerable.Repeat(0L, rr - response.Length)).ToArray();
            var real = Enumerable.Range(0, p + rr).Select(j => j >= pad && j < p + response.Length).ToArray();
            Assert.Equal(expected, sequences.AsSpan(row * (p + rr), p + rr).ToArray());
            Assert.Equal(real, attention.AsSpan(row * (p + rr), p + rr).ToArray());
            Assert.Equal(response.Concat(Enumerable.Repeat(0L, rr - response.Length)), tokens.AsSpan(row * rr, rr).ToArray());
            Assert.Equal(Enumerable.Range(0, rr).Select(j => j < response.Length), responseMask.AsSpan(row * rr, rr).ToArray());
            Assert.Equal(response.Length, lengths[row]);
        }

        var tokenizer = new Core.Tokenizers.CharTokenizer(TinyPolicy.Vocabulary);
        var texts = r.Responses.Select(x => tokenizer.Decode(x.Select(id => (int)id).ToArray())).ToList();
        Assert.Equal(texts, r.Batch.Texts);
        var reward = new LetterShare('e');
        Assert.Equal(texts.Select(t => (float)reward.Score(t).Total), r.Batch.Scores.data<float>().ToArray());
        Assert.Equal(r.Model.Options.NumLayers, r.Batch.Routing.Count);
        foreach (var layer in r.Batch.Routing) Assert.Equal([b * (long)(p + rr), r.Model.Options.TopK], layer.shape);
    }

    [Fact]
    public void Old_log_probs_and_values_equal_a_naive_teacher_forced_computation_on_each_row_alone()
    {
        using var r = Collect();
        int p = r.Batch.PromptColumns, rr = r.Batch.ResponseColumns;
        float[] old = Weights.Values(r.Batch.OldLogProbs);
        float[] values = Weights.Values(r.Batch.Values!);
        var headWeights = Weights.Snapshot(r.Head.named_parameters());
        float[] head = headWeights["summary.weight"];                 // (1, C)
        float bias = headWeights["summary.bias"][0];                  // (1)
        Assert.Equal(head.Length, r.Model.Options.HiddenSize);
        using var noGrad = torch.no_grad();
        r.Model.eval(); // the rollout's distribution: no router noise
        for (int row = 0; row < r.Prompts.Count; row++)
        {
            var prompt = r.Prompts[row];
            var response = r.Responses[row];
            long[] ids = [.. prompt, .. response];
            double[][] logits, hidden;
            using (var scope = torch.NewDisposeScope())
            using (var output = r.Model.call(new CausalLMInput(torch.tensor(ids, 1, ids.Length), RouterStatistics: false, OutputHiddenStates: true)))
            {
                logits = Rows(output.Logits);
                hidden = Rows(output.LastHiddenState!);
            }

            for (int j = 0; j < rr; j++)
            {
                float actualLogProb = old[row * rr + j], actualValue = values[row * rr + j];
                if (j >= response.Length)
                {
                    Assert.Equal(0f, actualLogProb);
                    Assert.Equal(0f, actualValue);
                    continue;
                }

                // position prompt.Count − 1 + j predicts response token j: log softmax(logits / T) at that token
                var z = logits[prompt.Count - 1 + j].Select(x => x / Temperature).ToArray();
                double max = z.Max();
                double logSumExp = max + Math.Log(z.Sum(x => Math.Exp(x - max)));
                double expected = z[response[j]] - logSumExp;
                Assert.True(Math.Abs(expected - actualLogProb) < LogProbTolerance, $"row {row}, token {j}: naive {expected}, collector {actualLogProb}");
                // the value of the state before token j: the head on the same hidden state
                double value = bias + hidden[prompt.Count - 1 + j].Zip(head, (h, w) => h * w).Sum();
                Assert.True(Math.Abs(value - actualValue) < LogProbTolerance, $"row {row}, token {j}: naive value {value}, collector {actualValue}");
            }
        }
    }

    [Fact]
    public void Reference_log_probs_equal_the_old_log_probs_before_any_update()
    {
        using var r = Collect();
        // the reference is a copy of the same weights run on the same batch: the KL starts at exactly 0
        Assert.True(Weights.Identical(Weights.Values(r.Batch.OldLogProbs), Weights.Values(r.Batch.ReferenceLogProbs)));
        // and the reference is really a second model: changing the policy moves the old log-probs, not the reference's
        using (torch.no_grad())
            foreach (var p in r.Model.parameters()) p.add_(0.05);
        var (batch, _) = new ExperienceCollector(r.Model, null, r.Reference, new Core.Tokenizers.CharTokenizer(TinyPolicy.Vocabulary), new LetterShare('e'))
            .Collect(r.Prompts, new RolloutSettings(ResponseTokens, Temperature, Seed, [[r.StopId]]));
        using (batch)
        {
            Assert.Null(batch.Values);
            Assert.False(Weights.Identical(Weights.Values(batch.OldLogProbs), Weights.Values(batch.ReferenceLogProbs)));
        }
    }

    /// <summary>The (1, T, D) tensor's rows as doubles.</summary>
    private static double[][] Rows(Tensor t)
    {
        long rows = t.size(1), width = t.size(2);
        float[] flat = Weights.Values(t);
        return Enumerable.Range(0, (int)rows).Select(i => flat.AsSpan(i * (int)width, (int)width).ToArray().Select(x => (double)x).ToArray()).ToArray();
    }
}
