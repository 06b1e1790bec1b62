using TorchSharp;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;
using static TorchSharp.torch;

namespace YingHub.Moe.Rewards.LanguageModels;

/// <summary>
/// Perplexity under any causal language model of the library (a YingHub.Moe model, GPT-2 loaded from Hugging Face
/// files): <c>exp(mean over predicted tokens of −log p(token | previous tokens))</c>. A text longer than the context is
/// scored in consecutive windows of the context length, each predicting its own tokens from the ones before it in that
/// window. With a begin token (GPT-2's <c>&lt;|endoftext|&gt;</c>), the text's first token is predicted too.
/// <para>
/// A text of one token and no begin token leaves nothing to predict. It scores the model's vocabulary size V: the
/// perplexity of a model that knows nothing (every token 1/V), as if its one token were guessed without context. The
/// text then gets no credit for fluency it has not shown (for a GPT-2-sized vocabulary that is far past the reward's
/// zero-coherence point), and a batch of texts still gets a finite score for each.
/// </para>
/// </summary>
public sealed class CausalLMPerplexityScorer : ILanguageModelScorer
{
    private readonly ICausalLanguageModel _model;
    private readonly ITextTokenizer _tokenizer;
    private readonly int? _beginToken;

    /// <summary>A scorer over <paramref name="model"/> and its <paramref name="tokenizer"/>.</summary>
    /// <param name="model">The language model (put in evaluation mode by the caller if it is a module).</param>
    /// <param name="tokenizer">The tokenizer the model was trained with.</param>
    /// <param name="beginToken">A token to put before every text, or null.</param>
    /// <exception cref="ArgumentException">The tokenizer's vocabulary is larger than the model's, or the begin token is outside it.</exception>
    public CausalLMPerplexityScorer(ICausalLanguageModel model, ITextTokenizer tokenizer, int? beginToken = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (tokenizer.VocabSize > model.VocabSize)
            throw new ArgumentException($"The {tokenizer.Name} tokenizer has {tokenizer.VocabSize} tokens but the model only {model.VocabSize}.", nameof(tokenizer));
        if (beginToken is { } b && (b < 0 || b >= model.VocabSize))
            throw new ArgumentException($"Begin token {b} is outside the vocabulary [0, {model.VocabSize}).", nameof(beginToken));
        _model = model;
        _tokenizer = tokenizer;
        _beginToken = beginToken;
    }

    /// <inheritdoc />
    /// <returns>The perplexity, ≥ 1; the model's vocabulary size for a one-token text without a begin token (see the class remarks).</returns>
    /// <exception cref="ArgumentException">The text encodes to no token, or holds text the tokenizer cannot encode.</exception>
    public double Perplexity(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<long>();
        if (_beginToken is { } b) ids.Add(b);
        int before = ids.Count;
        ids.AddRange(_tokenizer.Encode(text).Select(i => (long)i));
        if (ids.Count == before) throw new ArgumentException("The text encodes to no token; perplexity needs at least one.", nameof(text));
        if (ids.Count == 1) return _model.VocabSize; // nothing to predict: the uninformed model's perplexity

        double nll = 0;
        long predicted = 0;
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        // windows of up to context + 1 tokens overlapping by one: inputs ids[s, s + L - 1), targets ids[s + 1, s + L),
        // so every token after the first is predicted exactly once
        for (int s = 0; s < ids.Count - 1;)
        {
            int length = Math.Min(_model.ContextLength + 1, ids.Count - s);
            var window = torch.tensor(ids.GetRange(s, length).ToArray(), device: _model.Device).unsqueeze(0); // (1, L)
            var logits = _model.Logits(window[.., ..(length - 1)]).to(ScalarType.Float32);                   // (1, L-1, V)
            var logProbs = logits.log_softmax(-1).gather(2, window[.., 1..].unsqueeze(2));                   // (1, L-1, 1)
            nll -= logProbs.sum().item<float>();
            predicted += length - 1;
            s += length - 1;
        }

        return Math.Exp(nll / predicted);
    }
}
