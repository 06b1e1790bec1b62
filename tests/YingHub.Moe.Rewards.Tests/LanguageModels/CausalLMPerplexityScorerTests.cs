using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Rewards.LanguageModels;

namespace YingHub.Moe.Rewards.Tests.LanguageModels;

public class CausalLMPerplexityScorerTests
{
    private static MoeForCausalLM Model(int vocab, int context)
    {
        torch.manual_seed(17);
        var model = new MoeForCausalLM(new MoeModelOptions { VocabSize = vocab, ContextLength = context, HiddenSize = 16, NumHeads = 2, NumLayers = 1, NumExperts = 2, TopK = 1 });
        model.eval();
        return model;
    }

    /// <summary>exp(mean −log p) with every prefix scored by a full forward of its own (its last context tokens).</summary>
    private static double NaivePerplexity(MoeForCausalLM model, int[] ids, int window)
    {
        double nll = 0;
        using var _ = torch.no_grad();
        for (int i = 1; i < ids.Length; i++)
        {
            using var scope = torch.NewDisposeScope();
            int start = ((i - 1) / window) * window; // the scorer's windows: inputs [start, start + window)
            var input = torch.tensor(ids[start..i].Select(x => (long)x).ToArray()).unsqueeze(0);
            var logits = model.Logits(input)[0, -1].to(torch.ScalarType.Float64);
            double[] l = logits.data<double>().ToArray();
            double max = l.Max(), logSum = max + Math.Log(l.Sum(v => Math.Exp(v - max)));
            nll += logSum - l[ids[i]];
        }

        return Math.Exp(nll / (ids.Length - 1));
    }

    [Fact]
    public void Perplexity_is_exp_of_the_mean_token_nll_including_across_windows()
    {
        var tokenizer = CharTokenizer.FromCorpus("abcdefgh ");
        using var model = Model(tokenizer.VocabSize, context: 8);
        var scorer = new CausalLMPerplexityScorer(model, tokenizer);
        foreach (string text in new[] { "abc", "a bad cafe", "abcdefgh abcdefgh hgfedcba" }) // the last spans several windows
        {
            double expected = NaivePerplexity(model, tokenizer.Encode(text), window: 8);
            Assert.Equal(expected, scorer.Perplexity(text), expected * 1e-4);
        }

        Assert.True(new CausalLMPerplexityScorer(model, tokenizer, beginToken: 0).Perplexity("a") >= 1);
    }

    [Fact]
    public void A_one_token_text_scores_the_vocabulary_size_and_an_empty_one_is_refused()
    {
        var tokenizer = CharTokenizer.FromCorpus("abcdefgh ");
        using var model = Model(vocab: 12, context: 8); // a model vocabulary larger than the tokenizer's 9
        var scorer = new CausalLMPerplexityScorer(model, tokenizer);
        Assert.Equal(12.0, scorer.Perplexity("a"));
        Assert.Equal([12.0, 12.0], ((ILanguageModelScorer)scorer).Perplexities(["b", "h"]));
        Assert.Equal("text", Assert.Throws<ArgumentException>(() => scorer.Perplexity("")).ParamName);
        // with a begin token the one token is predicted from it: exp(−log p(a | begin))
        var withBegin = new CausalLMPerplexityScorer(model, tokenizer, beginToken: 0);
        double expected = NaivePerplexity(model, [0, tokenizer.Encode("a")[0]], window: 8);
        Assert.Equal(expected, withBegin.Perplexity("a"), expected * 1e-4);
        Assert.Equal("text", Assert.Throws<ArgumentException>(() => withBegin.Perplexity("")).ParamName);
    }

    [Fact]
    public void A_tokenizer_larger_than_the_model_is_rejected()
    {
        using var model = Model(4, 8);
        var ex = Assert.Throws<ArgumentException>(() => new CausalLMPerplexityScorer(model, CharTokenizer.FromCorpus("abcdef")));
        Assert.Contains("6 tokens but the model only 4", ex.Message);
    }
}
