using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Training.Adapters.Hydra;

/// <summary>Settings of a <see cref="HiddenStateEmbedder"/>.</summary>
public sealed class HiddenStateEmbedderOptions : IValidatableOptions
{
    /// <summary>Chunks per forward pass; [1, 4096].</summary>
    public int BatchSize { get; set; } = 8;

    /// <summary>Tokens per chunk (a longer document is cut into chunks of this many tokens); null: the model's context length; else [1, context length].</summary>
    public int? BlockSize { get; set; }

    /// <summary>Every problem, naming the field, its value and the allowed range.</summary>
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        errors.Require(BatchSize is >= 1 and <= 4096, nameof(BatchSize), BatchSize, "[1, 4096]");
        errors.Require(BlockSize is null or >= 1, nameof(BlockSize), BlockSize, "null (the context length) or >= 1");
        return errors;
    }
}
