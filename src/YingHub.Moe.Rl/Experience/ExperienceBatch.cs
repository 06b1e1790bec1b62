using TorchSharp;
using static TorchSharp.torch;

namespace YingHub.Moe.Rl.Experience;

/// <summary>
/// One rollout: B sequences of a prompt and a sampled response, with everything PPO and GRPO need, in one layout. Each
/// sequence is its prompt left-padded to <see cref="PromptColumns"/> columns followed by its response right-padded to
/// R columns, so every response starts at column P and per-token quantities are (B, R) over response tokens: column j
/// holds the quantity of response token j (its log-probability given everything before it, the value of the state
/// before it, ...). Tensors are owned by the batch.
/// </summary>
public sealed class ExperienceBatch : IDisposable
{
    /// <summary>Builds a batch; every tensor passes to its ownership. See the properties for the shapes.</summary>
    public ExperienceBatch(Tensor sequences, Tensor attentionMask, int promptColumns, Tensor responseTokens, Tensor responseMask,
        Tensor oldLogProbs, Tensor referenceLogProbs, Tensor? values, Tensor scores, IReadOnlyList<Tensor> routing,
        IReadOnlyList<string> texts, IReadOnlyList<IReadOnlyDictionary<string, double>> rewardComponents)
    {
        Sequences = sequences;
        AttentionMask = attentionMask;
        PromptColumns = promptColumns;
        ResponseTokens = responseTokens;
        ResponseMask = responseMask;
        OldLogProbs = oldLogProbs;
        ReferenceLogProbs = referenceLogProbs;
        Values = values;
        Scores = scores;
        Routing = routing;
        Texts = texts;
        RewardComponents = rewardComponents;
    }

    /// <summary>Prompt and response ids (B, P + R), int64; padding holds id 0.</summary>
    public Tensor Sequences { get; }

    /// <summary>Real tokens of <see cref="Sequences"/> (B, P + R), bool.</summary>
    public Tensor AttentionMask { get; }

    /// <summary>P: the columns of the (left-padded) prompts; responses start there.</summary>
    public int PromptColumns { get; }

    /// <summary>The sampled response tokens (B, R), int64, 0 after a response's end.</summary>
    public Tensor ResponseTokens { get; }

    /// <summary>Response tokens that exist (B, R), bool: a run from column 0 in every row.</summary>
    public Tensor ResponseMask { get; }

    /// <summary>Log-probabilities of the response tokens under the policy that sampled them (B, R), fp32, 0 off the mask.</summary>
    public Tensor OldLogProbs { get; }

    /// <summary>The same under the frozen reference (B, R), fp32.</summary>
    public Tensor ReferenceLogProbs { get; }

    /// <summary>The value head's estimate of the state before each response token (B, R), fp32 (PPO); null without a value head.</summary>
    public Tensor? Values { get; }

    /// <summary>The task reward of each whole response (B), fp32.</summary>
    public Tensor Scores { get; }

    /// <summary>
    /// The experts each position took in the rollout's forward, one (B·(P + R), k) int64 tensor per MoE layer in order
    /// (<c>CausalLMOutput.Routing</c>), for routing replay.
    /// </summary>
    public IReadOnlyList<Tensor> Routing { get; }

    /// <summary>The decoded responses, one per row.</summary>
    public IReadOnlyList<string> Texts { get; }

    /// <summary>Each response's reward components by name.</summary>
    public IReadOnlyList<IReadOnlyDictionary<string, double>> RewardComponents { get; }

    /// <summary>B.</summary>
    public int Count => (int)Sequences.size(0);

    /// <summary>R.</summary>
    public int ResponseColumns => (int)ResponseTokens.size(1);

    /// <summary>Real tokens of each response (B), host copy.</summary>
    public long[] ResponseLengths()
    {
        using var scope = torch.NewDisposeScope();
        return ResponseMask.sum([1]).to(ScalarType.Int64).cpu().data<long>().ToArray();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Sequences.Dispose();
        AttentionMask.Dispose();
        ResponseTokens.Dispose();
        ResponseMask.Dispose();
        OldLogProbs.Dispose();
        ReferenceLogProbs.Dispose();
        Values?.Dispose();
        Scores.Dispose();
        foreach (var r in Routing) r.Dispose();
    }
}
