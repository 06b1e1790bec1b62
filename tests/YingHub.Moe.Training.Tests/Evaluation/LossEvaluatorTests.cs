using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Training.Data;
using YingHub.Moe.Training.Evaluation;

namespace YingHub.Moe.Training.Tests.Evaluation;

public sealed class LossEvaluatorTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("yinghub-eval-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void The_loss_is_the_mean_of_the_batch_losses_and_the_perplexity_its_exponential()
    {
        string text = string.Concat(Enumerable.Range(0, 300).Select(i => (char)('a' + (i * 7 % 26))));
        string path = Path.Combine(_dir, "corpus.txt");
        File.WriteAllText(path, text);
        var tokenizer = CharTokenizer.FromCorpus(text);
        using var corpus = TokenCorpus.Open(path, tokenizer, Path.Combine(_dir, "corpus.tokens"));
        torch.manual_seed(11);
        using var model = new MoeForCausalLM(new MoeModelOptions
        {
            VocabSize = tokenizer.VocabSize, ContextLength = 8, HiddenSize = 16, NumHeads = 2, NumLayers = 1, NumExperts = 4, TopK = 2,
            ExpertMultiplier = 2, Router = RouterKind.NoisyTopK, Dropout = 0.5,
        });
        model.train();

        var result = LossEvaluator.Evaluate(model, new BlockSampler(corpus, 0, corpus.Count, 8, seed: 3), batches: 5, batchSize: 3);

        // naive: the same blocks, one batch at a time, in evaluation mode
        var naive = new BlockSampler(corpus, 0, corpus.Count, 8, seed: 3);
        model.eval();
        var losses = new List<double>();
        using (torch.no_grad())
        {
            for (int i = 0; i < 5; i++)
            {
                var (x, y) = naive.Next(3);
                using var output = model.call(new CausalLMInput(x, y));
                losses.Add(output.LmLoss!.item<float>());
                x.Dispose();
                y.Dispose();
            }
        }

        Assert.True(losses.Distinct().Count() > 1, "the batches should differ");
        Assert.Equal(losses.Average(), result.Loss, 5);
        Assert.Equal(Math.Exp(result.Loss), result.Perplexity, 9);
        Assert.Equal(5 * 3 * 8, result.Tokens);
        Assert.Equal(5, result.Batches);
        model.train();
        var again = LossEvaluator.Evaluate(model, new BlockSampler(corpus, 0, corpus.Count, 8, seed: 3), batches: 5, batchSize: 3);
        Assert.Equal(result.Loss, again.Loss, 9); // deterministic: no dropout or router noise in evaluation mode
        Assert.True(model.training);
    }

    [Fact]
    public void Bad_arguments_are_refused()
    {
        string path = Path.Combine(_dir, "c.txt");
        File.WriteAllText(path, "abcdefghijklmnopqrstuvwxyz");
        using var corpus = TokenCorpus.Open(path, CharTokenizer.FromCorpus("abcdefghijklmnopqrstuvwxyz"), Path.Combine(_dir, "c.tokens"));
        using var model = new MoeForCausalLM(new MoeModelOptions { VocabSize = 26, ContextLength = 4, HiddenSize = 16, NumHeads = 2, NumLayers = 1, NumExperts = 2, TopK = 1 });
        Assert.Throws<ArgumentException>(() => LossEvaluator.Evaluate(model, new BlockSampler(corpus, 0, corpus.Count, 8, 1), 1, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => LossEvaluator.Evaluate(model, new BlockSampler(corpus, 0, corpus.Count, 4, 1), 0, 1));
    }
}
