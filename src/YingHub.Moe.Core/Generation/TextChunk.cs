namespace YingHub.Moe.Core.Generation;

/// <summary>Why a text generation ended.</summary>
public enum GenerationFinish
{
    /// <summary>The token budget (<see cref="SamplingOptions.MaxNewTokens"/>) ran out.</summary>
    Length,

    /// <summary>A stop sequence was produced: a text one (left out of the text) or one of token ids.</summary>
    StopSequence,

    /// <summary>The model produced the end-of-text token it was given (left out of the text).</summary>
    EndOfText,
}

/// <summary>
/// One piece of streamed text and the tokens behind it (<see cref="TextGenerator.Chunks"/>).
/// </summary>
/// <param name="Text">Text that became final; may be empty (a token that completes no character, or a held-back stop prefix).</param>
/// <param name="Tokens">New tokens consumed since the previous chunk: the chunks' counts add up to the generated tokens.</param>
/// <param name="Finish">Why generation ended, on the last chunk only; null on every other chunk.</param>
public readonly record struct TextChunk(string Text, int Tokens, GenerationFinish? Finish);
