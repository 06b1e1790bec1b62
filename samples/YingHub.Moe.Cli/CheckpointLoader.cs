using YingHub.Moe.Core.Checkpoints;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;

namespace YingHub.Moe.Cli;

/// <summary>Loads a checkpoint directory (model + tokenizer) for the CLI, turning failures into one-line messages.</summary>
internal static class CheckpointLoader
{
    public static (MoeForCausalLM? Model, ITextTokenizer? Tokenizer, string? Error) Load(string directory)
    {
        if (!Directory.Exists(directory)) return (null, null, $"Checkpoint directory '{directory}' does not exist.");
        try
        {
            var tokenizer = TokenizerFiles.Load(directory);
            var model = MoeCheckpoint.Load(directory);
            if (model.Options.VocabSize != tokenizer.VocabSize)
            {
                model.Dispose();
                return (null, null, $"Checkpoint '{directory}': the model has {model.Options.VocabSize} token ids but its {tokenizer.Name} tokenizer has {tokenizer.VocabSize}.");
            }

            return (model, tokenizer, null);
        }
        catch (Exception ex) when (ex is IOException or InvalidDataException or ArgumentException or UnauthorizedAccessException)
        {
            return (null, null, $"Checkpoint '{directory}': {ex.Message}");
        }
    }
}
