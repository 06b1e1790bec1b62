using YingHub.Moe.Core.Checkpoints;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;

namespace YingHub.Moe.Cli;

/// <summary>Loads a checkpoint directory (model + tokenizer) for the CLI; failures become one-line <see cref="CliException"/>s.</summary>
internal static class CheckpointLoader
{
    public static (MoeForCausalLM Model, ITextTokenizer Tokenizer) Load(string directory)
    {
        if (!Directory.Exists(directory)) throw new CliException($"Checkpoint directory '{directory}' does not exist.");
        try
        {
            var tokenizer = TokenizerFiles.Load(directory);
            var model = MoeCheckpoint.Load(directory);
            if (model.Options.VocabSize != tokenizer.VocabSize)
            {
                model.Dispose();
                throw new CliException($"Checkpoint '{directory}': the model has {model.Options.VocabSize} token ids but its {tokenizer.Name} tokenizer has {tokenizer.VocabSize}.");
            }

            return (model, tokenizer);
        }
        catch (Exception ex) when (ex is IOException or InvalidDataException or ArgumentException or UnauthorizedAccessException)
        {
            throw new CliException($"Checkpoint '{directory}': {Cli.MessageOf(ex)}");
        }
    }
}
