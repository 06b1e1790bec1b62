using TorchSharp;
using YingHub.Moe.Core.Generation;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tests.Modules;
using YingHub.Moe.Core.Tokenizers;

namespace YingHub.Moe.Core.Tests.Generation;

/// <summary>
/// <see cref="TextGenerator.Chunks"/> against the token generator's own tokens: the text, how many tokens each chunk
/// took, and why generation ended. With a character tokenizer one token is one character, so positions in the text
/// are positions in the token stream.
/// </summary>
public class TextChunksTests
{
    private const int Budget = 24;
    private static readonly SamplingOptions Sampled = new() { MaxNewTokens = Budget, Seed = 7, TopK = 6 };

    private static (MoeForCausalLM Model, CharTokenizer Tokenizer, long[] Prompt) Setup()
    {
        var tokenizer = CharTokenizer.FromCorpus("abcdefghij \n");
        torch.manual_seed(25);
        var model = new MoeForCausalLM(Tiny.Options(o => o.VocabSize = tokenizer.VocabSize));
        return (model, tokenizer, tokenizer.Encode("abc").Select(i => (long)i).ToArray());
    }

    /// <summary>What the token generator samples for the same prompt and options, stop sequences aside.</summary>
    private static long[] Reference(MoeForCausalLM model, long[] prompt, SamplingOptions options) =>
        new TokenGenerator(model).Generate(prompt, new SamplingOptions { MaxNewTokens = options.MaxNewTokens, Seed = options.Seed, TopK = options.TopK });

    private static string Text(CharTokenizer tokenizer, IEnumerable<long> ids) => tokenizer.Decode(ids.Select(t => (int)t).ToArray());

    [Fact]
    public void At_the_budget_the_chunks_hold_every_token_once_and_end_with_length()
    {
        var (model, tokenizer, prompt) = Setup();
        using var _ = model;
        long[] expected = Reference(model, prompt, Sampled);
        var chunks = new TextGenerator(model, tokenizer).Chunks(prompt, Sampled).ToList();
        Assert.Equal(Text(tokenizer, expected), string.Concat(chunks.Select(c => c.Text)));
        Assert.Equal(Budget, chunks.Sum(c => c.Tokens));
        Assert.Equal(GenerationFinish.Length, chunks[^1].Finish);
        Assert.All(chunks.SkipLast(1), c => Assert.Null(c.Finish));
    }

    [Fact]
    public void A_text_stop_ends_at_the_token_that_completes_it_and_is_left_out()
    {
        var (model, tokenizer, prompt) = Setup();
        using var _ = model;
        string full = Text(tokenizer, Reference(model, prompt, Sampled));
        string stop = full.Substring(9, 2);
        int at = full.IndexOf(stop, StringComparison.Ordinal);
        var chunks = new TextGenerator(model, tokenizer).Chunks(prompt, Sampled, [stop]).ToList();
        Assert.Equal(full[..at], string.Concat(chunks.Select(c => c.Text)));
        Assert.Equal(at + stop.Length, chunks.Sum(c => c.Tokens)); // the stop's own tokens were generated
        Assert.Equal(GenerationFinish.StopSequence, chunks[^1].Finish);
    }

    [Fact]
    public void A_token_stop_is_kept_and_reported_as_a_stop_even_on_the_last_token_of_the_budget()
    {
        var (model, tokenizer, prompt) = Setup();
        using var _ = model;
        long[] expected = Reference(model, prompt, Sampled);
        long stopToken = expected[6];
        int first = Array.IndexOf(expected, stopToken);
        foreach (int budget in new[] { Budget, first + 1 })
        {
            var options = new SamplingOptions { MaxNewTokens = budget, Seed = 7, TopK = 6, StopSequences = [[stopToken]] };
            var chunks = new TextGenerator(model, tokenizer).Chunks(prompt, options).ToList();
            Assert.Equal(Text(tokenizer, expected.Take(first + 1)), string.Concat(chunks.Select(c => c.Text)));
            Assert.Equal(first + 1, chunks.Sum(c => c.Tokens));
            Assert.Equal(GenerationFinish.StopSequence, chunks[^1].Finish);
        }
    }

    [Fact]
    public void The_end_of_text_token_ends_generation_and_is_left_out()
    {
        var (model, tokenizer, prompt) = Setup();
        using var _ = model;
        long[] expected = Reference(model, prompt, Sampled);
        long endOfText = expected[5];
        int first = Array.IndexOf(expected, endOfText);
        var chunks = new TextGenerator(model, tokenizer).Chunks(prompt, Sampled, endOfText: endOfText).ToList();
        Assert.Equal(Text(tokenizer, expected.Take(first)), string.Concat(chunks.Select(c => c.Text)));
        Assert.Equal(first + 1, chunks.Sum(c => c.Tokens));
        Assert.Equal(GenerationFinish.EndOfText, chunks[^1].Finish);
    }

    [Fact]
    public void Bad_options_are_refused_by_the_call_not_on_enumeration()
    {
        var (model, tokenizer, prompt) = Setup();
        using var _ = model;
        var generator = new TextGenerator(model, tokenizer);
        var error = Assert.Throws<ArgumentException>(() => generator.Chunks(prompt, new SamplingOptions { Temperature = -1 }));
        Assert.Contains("Temperature", error.Message);
        Assert.Throws<ArgumentException>(() => generator.Chunks([], Sampled));
    }
}
