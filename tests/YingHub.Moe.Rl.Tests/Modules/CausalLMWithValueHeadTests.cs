using TorchSharp;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Rl.Algorithms;
using YingHub.Moe.Rl.Experience;
using YingHub.Moe.Rl.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Rl.Tests.Modules;

/// <summary>Where the gradients of PPO's loss terms go: the policy terms never reach the value head, the value loss reaches the trunk only when shared.</summary>
public class CausalLMWithValueHeadTests
{
    private const int PromptColumns = 3, ResponseColumns = 4;

    [Fact]
    public void The_policy_loss_terms_send_no_gradient_to_the_value_head()
    {
        var (model, _) = TinyPolicy.Create();
        using var owned = model;
        using var policy = WithRandomHead(model);
        using var scope = torch.NewDisposeScope();
        var (input, tokens, mask) = Input();
        var (output, values) = policy.Forward(input);
        var logProbs = ResponseLogProbs.Gather(output.Logits, PromptColumns, tokens, mask, temperature: 1);                // (B, R)
        using var generator = new torch.Generator(4);
        var advantages = torch.randn(tokens.shape, generator: generator);                                   // (B, R)
        // every term but the value loss: the clipped surrogate, the entropy bonus, GRPO's KL and the MoE auxiliary loss
        var loss = PpoLosses.Policy(logProbs, logProbs.detach() - 0.1, advantages, mask).Loss
            - 0.01 * PpoLosses.MaskedMean(ResponseLogProbs.Entropy(output.Logits, PromptColumns, mask, 1), mask)
            + 0.1 * PpoLosses.MaskedMean(Kl.PerToken(logProbs, logProbs.detach() + 0.2, mask, KlEstimator.K3), mask)
            + output.LoadBalancingLoss;
        loss.backward();

        Assert.All(policy.ValueHead.parameters(), p => Assert.Null(p.grad));
        Assert.Contains(model.parameters(), p => p.grad is { } g && g.abs().sum().item<float>() > 0);
        GC.KeepAlive(values);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void The_value_loss_trains_the_head_and_the_trunk_only_when_shared(bool valueTrainsModel)
    {
        var (model, _) = TinyPolicy.Create();
        using var owned = model;
        using var policy = WithRandomHead(model);
        using var scope = torch.NewDisposeScope();
        var (input, _, mask) = Input();
        var (_, values) = policy.Forward(input, valueTrainsModel);
        var response = ResponseLogProbs.Slice(values, PromptColumns, ResponseColumns);                                    // (B, R)
        var loss = PpoLosses.Value(response, response.detach() + 0.3, torch.ones_like(response), mask).Loss;
        loss.backward();

        Assert.All(policy.ValueHead.parameters(), p => Assert.True(p.grad is { } g && g.abs().sum().item<float>() > 0));
        bool trunkGradient = model.parameters().Any(p => p.grad is { } g && g.abs().sum().item<float>() > 0);
        Assert.Equal(valueTrainsModel, trunkGradient);
    }

    private static CausalLMWithValueHead WithRandomHead(MoeForCausalLM model)
    {
        var head = new ValueHead(model.Options.HiddenSize);
        using var generator = new torch.Generator(9);
        using (torch.no_grad())
        using (torch.NewDisposeScope())
        {
            // a zero head (the default) passes no gradient back to the trunk at all: the sharing would not show
            foreach (var p in head.parameters()) p.copy_(torch.randn(p.shape, generator: generator));
        }

        return new CausalLMWithValueHead(model, head);
    }

    /// <summary>Two rows of P + R ids (the second's response one token shorter), labels over the response for the auxiliary loss, and the response mask.</summary>
    private static (CausalLMInput Input, Tensor Tokens, Tensor Mask) Input()
    {
        long[] ids = [1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 0];
        var sequences = torch.tensor(ids, 2, PromptColumns + ResponseColumns);                                           // (B, P + R)
        var attention = torch.tensor(new[] { true, true, true, true, true, true, true, true, true, true, true, true, true, false }, 2, PromptColumns + ResponseColumns);
        var tokens = sequences.narrow(1, PromptColumns, ResponseColumns).clone();                                       // (B, R)
        var mask = attention.narrow(1, PromptColumns, ResponseColumns).clone();                                          // (B, R)
        return (new CausalLMInput(sequences, Labels: sequences.masked_fill(attention.logical_not(), -100L), AttentionMask: attention, RouterStatistics: false), tokens, mask);
    }
}
