using TorchSharp;
using YingHub.Moe.Core.Checkpoints;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Generation;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;

namespace YingHub.Moe.Extensions.AI.Tests;

/// <summary>
/// A tiny random model over printable ASCII and newline (one token per character, so the chat template and any
/// English prompt encode), fixed by its seed, and a checkpoint of it on disk.
/// </summary>
internal sealed class TinyModel : IDisposable
{
    public const int ContextLength = 96;

    public TinyModel(int seed = 5)
    {
        Tokenizer = new CharTokenizer("\n" + new string(Enumerable.Range(' ', '~' - ' ' + 1).Select(c => (char)c).ToArray()));
        torch.manual_seed(seed);
        Model = new MoeForCausalLM(new MoeModelOptions
        {
            VocabSize = Tokenizer.VocabSize, ContextLength = ContextLength, HiddenSize = 16, NumHeads = 2, NumLayers = 2,
            NumExperts = 4, TopK = 2, ExpertMultiplier = 2, DenseMultiplier = 2, Activation = ExpertActivation.Relu,
        });
    }

    public MoeForCausalLM Model { get; }

    public CharTokenizer Tokenizer { get; }

    /// <summary>The continuation <see cref="TextGenerator"/> gives: the reference every client and server answer is compared with.</summary>
    public string Generate(string prompt, SamplingOptions options, IReadOnlyList<string>? stops = null) =>
        new TextGenerator(Model, Tokenizer).Generate(prompt, options, stops);

    /// <summary>Saves the model and tokenizer as a checkpoint directory under <paramref name="parent"/>.</summary>
    public string Save(string parent, string name = "tiny-chat")
    {
        string directory = Path.Combine(parent, name);
        MoeCheckpoint.Save(Model, directory, staging => TokenizerFiles.Save(Tokenizer, staging));
        return directory;
    }

    public void Dispose() => Model.Dispose();
}
