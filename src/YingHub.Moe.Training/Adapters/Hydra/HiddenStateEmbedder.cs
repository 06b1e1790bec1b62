using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Interop;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Adapters.Hydra;

/// <summary>
/// Embeds a document as the mean of the base model's final hidden states (after the final norm) over all its tokens.
/// A document longer than the block size is cut into chunks of that many tokens, each run on its own (so a token sees
/// only the earlier tokens of its chunk); the mean is over every token of every chunk. Chunks of several documents
/// share a forward pass, right-padded: <see cref="MoeForCausalLM"/> gets the padding as its
/// <see cref="CausalLMInput.AttentionMask"/> and returns the states through <see cref="CausalLMInput.OutputHiddenStates"/>;
/// <see cref="Gpt2LMHeadModel"/> has no such output, so its states are read by a forward hook on <c>ln_f</c> (under
/// causal attention the trailing padding changes no real position). Runs without autograd in evaluation mode (the
/// model's mode is restored afterwards). The embeddings see the model's active adapters, if any: deactivate them to
/// embed with the base alone.
/// </summary>
public sealed class HiddenStateEmbedder : IDocumentEmbedder
{
    private readonly nn.Module _model;
    private readonly ITextTokenizer _tokenizer;
    private readonly Func<Tensor, Tensor?, Tensor> _hidden; // ids (B, T), mask (B, T) or null -> states (B, T, C), in the current scope
    private readonly int _batchSize;

    /// <summary>Embeds with a <see cref="MoeForCausalLM"/>.</summary>
    /// <exception cref="ArgumentException">Invalid options, a block size above the context, or a tokenizer larger than the vocabulary.</exception>
    public HiddenStateEmbedder(MoeForCausalLM model, ITextTokenizer tokenizer, HiddenStateEmbedderOptions? options = null)
        : this(model, tokenizer, options, model?.Options.HiddenSize ?? 0, ((ICausalLanguageModel?)model)?.ContextLength ?? 0, ((ICausalLanguageModel?)model)?.VocabSize ?? 0)
    {
        _hidden = (ids, mask) =>
            model!.call(new CausalLMInput(ids, RouterStatistics: false, AttentionMask: mask, OutputHiddenStates: true)).LastHiddenState!;
    }

    /// <summary>Embeds with a <see cref="Gpt2LMHeadModel"/> (states of <c>ln_f</c>).</summary>
    /// <exception cref="ArgumentException">Invalid options, a block size above the context, or a tokenizer larger than the vocabulary.</exception>
    public HiddenStateEmbedder(Gpt2LMHeadModel model, ITextTokenizer tokenizer, HiddenStateEmbedderOptions? options = null)
        : this(model, tokenizer, options, model?.Config.Embedding ?? 0, model?.ContextLength ?? 0, model?.VocabSize ?? 0)
    {
        var finalNorm = (nn.Module<Tensor, Tensor>)model!.named_modules().Single(m => m.name == "ln_f").module;
        _hidden = (ids, _) =>
        {
            Tensor? captured = null;
            var hook = finalNorm.register_forward_hook((_, _, y) =>
            {
                captured = y.detach().clone().DetachFromDisposeScope();
                return y;
            });
            try
            {
                model.call(ids);
            }
            finally
            {
                hook.remove();
            }

            using var owned = captured!;
            return owned.clone();                                                           // (B, T, C), in the caller's scope
        };
    }

    private HiddenStateEmbedder(nn.Module model, ITextTokenizer tokenizer, HiddenStateEmbedderOptions? options, int hidden, int context, int vocab)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        options ??= new HiddenStateEmbedderOptions();
        options.ThrowIfInvalid(nameof(options));
        if (options.BlockSize > context) throw new ArgumentException($"BlockSize = {options.BlockSize} exceeds the model's context length {context}.", nameof(options));
        if (tokenizer.VocabSize > vocab) throw new ArgumentException($"The tokenizer's {tokenizer.VocabSize} ids exceed the model's vocabulary of {vocab}.", nameof(tokenizer));
        _model = model;
        _tokenizer = tokenizer;
        _batchSize = options.BatchSize;
        BlockSize = options.BlockSize ?? context;
        Dimension = hidden;
        _hidden = (_, _) => throw new InvalidOperationException("No model.");
    }

    /// <inheritdoc />
    public int Dimension { get; }

    /// <summary>Tokens per chunk.</summary>
    public int BlockSize { get; }

    /// <inheritdoc />
    /// <exception cref="ArgumentException">A document the tokenizer cannot encode, or one without tokens (named by index).</exception>
    public Tensor Embed(IReadOnlyList<string> documents)
    {
        ArgumentNullException.ThrowIfNull(documents);
        var chunks = new List<(int Document, int[] Ids)>();
        for (int d = 0; d < documents.Count; d++)
        {
            int[] ids;
            try
            {
                ids = _tokenizer.Encode(documents[d] ?? throw new ArgumentException($"Document {d} is null.", nameof(documents)));
            }
            catch (ArgumentException e) when (e.ParamName != nameof(documents))
            {
                throw new ArgumentException($"Document {d} cannot be tokenized: {e.Message}", nameof(documents), e);
            }

            if (ids.Length == 0) throw new ArgumentException($"Document {d} has no tokens; it cannot be embedded.", nameof(documents));
            for (int start = 0; start < ids.Length; start += BlockSize) chunks.Add((d, ids[start..Math.Min(ids.Length, start + BlockSize)]));
        }

        bool wasTraining = _model.training;
        _model.eval();
        try
        {
            using var noGrad = torch.no_grad();
            var sums = torch.zeros(documents.Count, Dimension, ScalarType.Float64);          // (D, C)
            var counts = new double[documents.Count];
            for (int first = 0; first < chunks.Count; first += _batchSize)
            {
                using var scope = torch.NewDisposeScope();
                var batch = chunks.GetRange(first, Math.Min(_batchSize, chunks.Count - first));
                int t = batch.Max(c => c.Ids.Length);
                var ids = new long[batch.Count * t];
                var real = new bool[batch.Count * t];
                for (int b = 0; b < batch.Count; b++)
                {
                    for (int i = 0; i < batch[b].Ids.Length; i++)
                    {
                        ids[b * t + i] = batch[b].Ids[i];
                        real[b * t + i] = true;
                    }

                    counts[batch[b].Document] += batch[b].Ids.Length;
                }

                var device = ((ICausalLanguageModel)_model).Device;
                var input = torch.tensor(ids, [batch.Count, t]).to(device);                         // (B, T)
                var mask = torch.tensor(real, [batch.Count, t]).to(device);                         // (B, T)
                bool padded = real.Contains(false);
                var states = _hidden(input, padded ? mask : null).to(ScalarType.Float64, CPU);      // (B, T, C)
                var chunkSums = (states * mask.cpu().unsqueeze(-1)).sum(dim: 1);                    // (B, C)
                var owners = torch.tensor(batch.Select(c => (long)c.Document).ToArray());           // (B)
                sums.index_add_(0, owners, chunkSums, 1);
            }

            using var total = torch.tensor(counts).unsqueeze(1);                                   // (D, 1)
            using var mean = sums.div_(total);
            return mean.to(ScalarType.Float32);                                                     // (D, C)
        }
        finally
        {
            if (wasTraining) _model.train();
        }
    }
}
