using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Training.Checkpointing;
using YingHub.Moe.Training.Data;
using YingHub.Moe.Training.Freezing;

namespace YingHub.Moe.Training.Tests.Freezing;

public sealed class ParameterFreezingTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("yinghub-freeze-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static MoeForCausalLM Model(int vocab = 11, bool tied = false)
    {
        torch.manual_seed(2);
        return new MoeForCausalLM(new MoeModelOptions
        {
            VocabSize = vocab, ContextLength = 16, HiddenSize = 16, NumHeads = 2, NumLayers = 2, NumExperts = 4, TopK = 2, ExpertMultiplier = 2,
            Router = RouterKind.NoisyTopK, TieWordEmbeddings = tied, Positions = PositionEncoding.Learned,
        });
    }

    [Fact]
    public void Parts_and_globs_select_the_parameters_they_name()
    {
        using var model = Model();
        var names = model.named_parameters().Select(p => p.name).ToArray();
        Assert.Equal(["embed_tokens.weight", "embed_positions.weight"], ParameterFreezing.Select(model, ["embeddings"]));
        Assert.Equal(["lm_head.weight"], ParameterFreezing.Select(model, ["lm_head"]));
        Assert.Equal(names.Where(n => n.StartsWith("layers.0.", StringComparison.Ordinal)), ParameterFreezing.Select(model, ["blocks:1"]));
        Assert.Equal(names.Where(n => n.StartsWith("layers.", StringComparison.Ordinal)), ParameterFreezing.Select(model, ["blocks:2"]));
        Assert.Equal(["layers.0.block_sparse_moe.gate.weight", "layers.0.block_sparse_moe.gate.noise.weight", "layers.1.block_sparse_moe.gate.weight", "layers.1.block_sparse_moe.gate.noise.weight"],
            ParameterFreezing.Select(model, ["routers"]).Where(n => n.EndsWith(".weight", StringComparison.Ordinal)));
        Assert.All(ParameterFreezing.Select(model, ["attention"]), n => Assert.Contains(".self_attn.", n));
        Assert.All(ParameterFreezing.Select(model, ["experts"]), n => Assert.Contains("block_sparse_moe.experts", n));
        Assert.Equal(names.Where(n => n.StartsWith("layers.1.", StringComparison.Ordinal) && n.Contains("layernorm", StringComparison.Ordinal)),
            ParameterFreezing.Select(model, ["layers.1.*layernorm*"]));

        var ex = Assert.Throws<ArgumentException>(() => ParameterFreezing.Select(model, ["routerz"]));
        Assert.Contains("'routerz' selects no parameter", ex.Message);
        Assert.Contains("embeddings, blocks:N, attention, routers, experts, lm_head", ex.Message);
        Assert.Contains("blocks:N needs", Assert.Throws<ArgumentException>(() => ParameterFreezing.Select(model, ["blocks:0"])).Message);
    }

    [Fact]
    public void With_tied_embeddings_the_head_is_the_token_embedding()
    {
        using var model = Model(tied: true);
        Assert.Equal(["embed_tokens.weight"], ParameterFreezing.Select(model, ["lm_head"]));
        ParameterFreezing.Freeze(model, ["lm_head"]);
        Assert.Equal(["embed_tokens.weight"], ParameterFreezing.FrozenNames(model));
    }

    [Fact]
    public void Frozen_parameters_get_no_optimizer_state_stay_bit_identical_and_the_checkpoint_records_them()
    {
        string text = string.Concat(Enumerable.Repeat("a frozen lake. ", 200));
        string path = Path.Combine(_dir, "text.txt");
        File.WriteAllText(path, text);
        var tokenizer = CharTokenizer.FromCorpus(text);
        using var corpus = TokenCorpus.Open(path, tokenizer);
        TrainerOptions Options(string? dir) => new()
        {
            Steps = 4, BatchSize = 2, WarmupSteps = 0, LogInterval = 2, EvalInterval = 4, EvalBatches = 1, PeakFlopsPerSecond = 1e11,
            WeightDecay = 0.5, CheckpointDirectory = dir, Freeze = ["embeddings", "blocks:1", "routers"],
        };

        string run = Path.Combine(_dir, "run");
        using (var model = Model(tokenizer.VocabSize))
        {
            var before = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.data<float>().ToArray());
            var (train, _) = BlockSampler.Split(corpus, 16, seed: 3);
            using var trainer = new Trainer(model, train, null, Options(run));
            var frozen = ParameterFreezing.FrozenNames(model);
            Assert.Contains("embed_positions.weight", frozen);
            Assert.Contains("layers.0.self_attn.qkv_proj.weight", frozen);
            Assert.Contains("layers.1.block_sparse_moe.gate.weight", frozen);
            Assert.DoesNotContain("layers.1.self_attn.qkv_proj.weight", frozen);
            Assert.DoesNotContain(trainer.OptimizerStep.Optimizer.Groups.SelectMany(g => g.ParameterNames), frozen.Contains); // no state, no decay
            trainer.Run();

            foreach (var (name, p) in model.named_parameters())
            {
                bool same = before[name].AsSpan().SequenceEqual(p.data<float>().ToArray());
                Assert.True(frozen.Contains(name) == same, $"{name}: frozen {frozen.Contains(name)}, unchanged {same}");
            }

            Assert.Equal(frozen, CheckpointStore.ReadState(run).Frozen);
        }

        // resuming re-applies nothing silently: a model frozen differently is refused, naming both sets
        using (var model = Model(tokenizer.VocabSize))
        {
            var (train, _) = BlockSampler.Split(corpus, 16, seed: 3);
            var options = Options(null);
            options.Freeze = ["embeddings"];
            using var trainer = new Trainer(model, train, null, options);
            var ex = Assert.Throws<ArgumentException>(() => trainer.Resume(run));
            Assert.Contains("this model freezes [embed_tokens.weight, embed_positions.weight]", ex.Message);
        }
    }
}
