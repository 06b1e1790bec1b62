using TorchSharp;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Training.Adapters.Hydra;
using static TorchSharp.torch;
using static YingHub.Moe.Training.Tests.Adapters.LoraTestModels;

namespace YingHub.Moe.Training.Tests.Adapters.Hydra;

public sealed class HiddenStateEmbedderTests
{
    private static readonly CharTokenizer Chars = new("abcdefghijk"); // 11 ids: the test model's vocabulary

    /// <summary>The model's final hidden states (T, C) of one unpadded chunk, read directly from <see cref="CausalLMOutput.LastHiddenState"/>.</summary>
    private static Tensor States(MoeForCausalLM model, string text)
    {
        using var noGrad = torch.no_grad();
        using var ids = torch.tensor(Chars.Encode(text).Select(i => (long)i).ToArray()).unsqueeze(0);  // (1, T)
        using var output = model.call(new CausalLMInput(ids, OutputHiddenStates: true));
        return output.LastHiddenState![0].clone();                                                      // (T, C)
    }

    [Fact]
    public void Mean_pooling_equals_a_manual_mean_of_LastHiddenState_with_chunks_and_padding()
    {
        using var model = MoeModel();
        const string shortDoc = "abcde";                       // one chunk of 5
        const string longDoc = "kjihgfedcbaabcdefghij";        // 21 tokens: chunks 8, 8, 5
        var embedder = new HiddenStateEmbedder(model, Chars, new HiddenStateEmbedderOptions { BatchSize = 2, BlockSize = 8 });
        Assert.Equal(16, embedder.Dimension);
        using var embedded = embedder.Embed([shortDoc, longDoc]);  // batches [5 | 8] and [8 | 5]: padded rows

        using var shortStates = States(model, shortDoc);
        using var expectedShort = shortStates.mean([0]);
        using var chunkStates = torch.cat([States(model, longDoc[..8]), States(model, longDoc[8..16]), States(model, longDoc[16..])], 0); // (21, C)
        Assert.Equal(21, chunkStates.size(0));
        using var expectedLong = chunkStates.mean([0]);
        Assert.True(embedded[0].allclose(expectedShort, rtol: 1e-4, atol: 1e-5));
        Assert.True(embedded[1].allclose(expectedLong, rtol: 1e-4, atol: 1e-5));
    }

    [Fact]
    public void Restores_training_mode_and_refuses_what_it_cannot_embed()
    {
        using var model = MoeModel();
        model.train();
        var embedder = new HiddenStateEmbedder(model, Chars);
        Assert.Equal(16, embedder.BlockSize);                     // the model's context
        using var _ = embedder.Embed(["abc"]);
        Assert.True(model.training);
        Assert.Contains("Document 1 has no tokens", Assert.Throws<ArgumentException>(() => embedder.Embed(["abc", ""])).Message);
        Assert.Contains("Document 0 cannot be tokenized", Assert.Throws<ArgumentException>(() => embedder.Embed(["xyz"])).Message);
        Assert.Contains("BlockSize = 17", Assert.Throws<ArgumentException>(() => new HiddenStateEmbedder(model, Chars, new HiddenStateEmbedderOptions { BlockSize = 17 })).Message);
    }

    [Fact]
    public void Gpt2_states_of_a_padded_batch_equal_each_document_alone()
    {
        using var model = Gpt2Model();                               // vocabulary 13, context 8
        var chars = new CharTokenizer("abcdefghijklm");
        var batched = new HiddenStateEmbedder(model, chars, new HiddenStateEmbedderOptions { BatchSize = 3 });
        var single = new HiddenStateEmbedder(model, chars, new HiddenStateEmbedderOptions { BatchSize = 1 });
        string[] docs = ["ab", "mlkjihgfedcb", "cafe"];           // 2, 8 + 4, 4 tokens
        using var a = batched.Embed(docs);
        using var b = single.Embed(docs);
        Assert.Equal([3L, 8L], a.shape);
        Assert.True(a.allclose(b, rtol: 1e-4, atol: 1e-5));
        Assert.True(a[0].sub(a[2]).abs().max().item<float>() > 1e-4); // different documents, different embeddings
    }
}
