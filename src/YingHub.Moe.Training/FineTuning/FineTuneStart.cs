using YingHub.Moe.Core.Checkpoints;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;

namespace YingHub.Moe.Training.FineTuning;

/// <summary>
/// The starting point of a fine-tuning run: a checkpoint's model (its options and weights) and its tokenizer, checked
/// against each other, against the tokenizer the caller asked for, and against the new corpus. Training then starts
/// afresh from these weights (a new <see cref="Trainer"/>: fresh optimizer, schedule and step count), unlike
/// <see cref="Trainer.Resume"/>, which continues the same run.
/// </summary>
/// <example>
/// <code>
/// var start = FineTuneStart.Load("runs/base", requestedTokenizer: "char");
/// start.EnsureEncodable(File.ReadAllText("sonnets.txt"), "sonnets.txt");
/// using var corpus = TokenCorpus.Open("sonnets.txt", start.Tokenizer);
/// using var model = start.Model;
/// </code>
/// </example>
public sealed class FineTuneStart
{
    private FineTuneStart(string directory, MoeForCausalLM model, ITextTokenizer tokenizer)
    {
        Directory = directory;
        Model = model;
        Tokenizer = tokenizer;
    }

    /// <summary>The checkpoint directory, as a full path.</summary>
    public string Directory { get; }

    /// <summary>The model with the checkpoint's weights, in training mode. The caller owns (and disposes) it.</summary>
    public MoeForCausalLM Model { get; }

    /// <summary>The checkpoint's tokenizer, which the fine-tuning run must keep (the embedding rows are its ids).</summary>
    public ITextTokenizer Tokenizer { get; }

    /// <summary>The checkpoint's model options.</summary>
    public MoeModelOptions Options => Model.Options;

    /// <summary>
    /// Loads the checkpoint in <paramref name="directory"/> (<c>config.json</c>, <c>model.safetensors</c>,
    /// <c>tokenizer.json</c>). With <paramref name="requestedTokenizer"/> (a kind such as <c>char</c> or
    /// <c>gpt2</c>), fails before loading any weights unless the checkpoint's tokenizer is of that kind.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">The directory does not exist.</exception>
    /// <exception cref="FileNotFoundException">A checkpoint file is missing.</exception>
    /// <exception cref="InvalidDataException">A file is malformed, or the model's vocabulary does not match its tokenizer.</exception>
    /// <exception cref="ArgumentException">The requested tokenizer kind is not the checkpoint's; the message names both.</exception>
    public static FineTuneStart Load(string directory, string? requestedTokenizer = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        string full = Path.GetFullPath(directory);
        if (!System.IO.Directory.Exists(full)) throw new DirectoryNotFoundException($"Checkpoint directory '{directory}' does not exist.");
        var options = MoeCheckpoint.ReadOptions(full); // fails early, naming config.json, on a directory that is not a checkpoint
        var tokenizer = TokenizerFiles.Load(full);
        if (TokenizerCompatibility.KindDifference(tokenizer, requestedTokenizer) is { } difference)
            throw new ArgumentException($"Checkpoint '{directory}': {difference}; fine-tuning keeps the checkpoint's tokenizer (omit the tokenizer or ask for {tokenizer.Name}).");
        if (options.VocabSize != tokenizer.VocabSize)
            throw new InvalidDataException($"Checkpoint '{directory}': the model has {options.VocabSize} token ids but its {tokenizer.Name} tokenizer has {tokenizer.VocabSize}.");
        var model = MoeCheckpoint.Load(full);
        model.train();
        return new FineTuneStart(full, model, tokenizer);
    }

    /// <summary>Throws unless the checkpoint's tokenizer can encode <paramref name="text"/> (see <see cref="TokenizerCompatibility.EnsureEncodable"/>).</summary>
    /// <param name="text">The new corpus.</param>
    /// <param name="source">Its name in the message, e.g. its path.</param>
    /// <exception cref="ArgumentException">The text holds characters outside a char tokenizer's vocabulary; the message names some and counts them.</exception>
    public void EnsureEncodable(string text, string source)
    {
        try
        {
            TokenizerCompatibility.EnsureEncodable(Tokenizer, text, source);
        }
        catch (ArgumentException ex)
        {
            throw new ArgumentException($"{ex.Message} A fine-tuning corpus must use the checkpoint's characters ('{Directory}').", ex);
        }
    }
}
