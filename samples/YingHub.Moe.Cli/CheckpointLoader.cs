using YingHub.Moe.Core.Checkpoints;
using YingHub.Moe.Core.Interop;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Training.Checkpointing;

namespace YingHub.Moe.Cli;

/// <summary>
/// Loads a checkpoint directory (model + tokenizer) for the CLI: a library checkpoint, or a Hugging Face Mixtral
/// directory (<see cref="MixtralImport"/>, recognised by the <c>model_type</c> of its <c>config.json</c>). Failures
/// become one-line <see cref="CliException"/>s.
/// </summary>
internal static class CheckpointLoader
{
    public static (MoeForCausalLM Model, ITextTokenizer Tokenizer) Load(string directory)
    {
        if (MixtralImport.IsHuggingFaceDirectory(directory)) return LoadHuggingFace(directory);
        if (!File.Exists(Path.Combine(directory, MoeCheckpoint.ConfigFile)) && Interrupted(directory) is { } newest)
        {
            Console.Error.WriteLine($"'{directory}' is incomplete (a save was interrupted); loading the run's newest complete checkpoint '{newest}'.");
            directory = newest;
        }

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

    /// <summary>A Hugging Face Mixtral directory: its model, and its tokenizer (whose ids must fit the model's vocabulary, which may be padded larger).</summary>
    private static (MoeForCausalLM Model, ITextTokenizer Tokenizer) LoadHuggingFace(string directory)
    {
        try
        {
            var tokenizer = MixtralImport.LoadTokenizer(directory);
            var model = MixtralImport.Load(directory);
            if (tokenizer.VocabSize > model.Options.VocabSize)
            {
                model.Dispose();
                throw new CliException($"Hugging Face model '{directory}': its {tokenizer.Name} tokenizer has {tokenizer.VocabSize} tokens, more than the model's vocab_size {model.Options.VocabSize}.");
            }

            return (model, tokenizer);
        }
        catch (Exception ex) when (ex is IOException or InvalidDataException or ArgumentException or UnauthorizedAccessException)
        {
            throw new CliException($"Hugging Face model '{directory}': {Cli.MessageOf(ex)}");
        }
    }

    /// <summary>The newest complete checkpoint of a training run whose directory a killed save left without one, or null.</summary>
    private static string? Interrupted(string directory)
    {
        try
        {
            return CheckpointStore.FindNewestComplete(directory);
        }
        catch (InvalidDataException)
        {
            return null;
        }
    }
}
