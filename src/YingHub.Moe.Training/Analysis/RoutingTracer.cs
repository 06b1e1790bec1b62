using System.Text.Json.Serialization;
using TorchSharp;
using YingHub.Moe.Core.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Analysis;

/// <summary>The experts one token used at one MoE layer, best first, with their gate weights.</summary>
/// <param name="Layer">Decoder layer index.</param>
/// <param name="Experts">The k experts, best first.</param>
/// <param name="Weights">Their gate weights.</param>
public sealed record LayerChoice(
    [property: JsonPropertyName("layer")] int Layer,
    [property: JsonPropertyName("experts")] int[] Experts,
    [property: JsonPropertyName("weights")] float[] Weights);

/// <summary>A token's routing in every MoE layer.</summary>
/// <param name="Position">The token's index in the traced sequence.</param>
/// <param name="TokenId">The token id.</param>
/// <param name="Layers">One choice per MoE layer, in layer order.</param>
public sealed record TokenRouting(
    [property: JsonPropertyName("position")] int Position,
    [property: JsonPropertyName("token_id")] long TokenId,
    [property: JsonPropertyName("layers")] IReadOnlyList<LayerChoice> Layers);

/// <summary>
/// Which experts each token of a sequence uses (e.g. the tokens <c>yinghub generate --trace-routing</c> sampled): the
/// tokens are run again in evaluation mode, each routed with up to the context length of tokens before it, as the
/// model routes it when it is fed back as input. Tokens within the first context window take one forward together;
/// each later token takes a forward of the window that ends with it.
/// </summary>
public static class RoutingTracer
{
    /// <summary>The routing of <paramref name="tokens"/>[<paramref name="start"/>..] (earlier tokens are context only).</summary>
    /// <param name="model">The model.</param>
    /// <param name="tokens">The whole sequence (e.g. prompt and generated tokens).</param>
    /// <param name="start">The first token traced, in [0, tokens.Count].</param>
    /// <exception cref="ArgumentException"><paramref name="start"/> is out of range, or a token is outside the vocabulary.</exception>
    public static IReadOnlyList<TokenRouting> Trace(MoeForCausalLM model, IReadOnlyList<long> tokens, int start)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokens);
        if (start < 0 || start > tokens.Count) throw new ArgumentOutOfRangeException(nameof(start), start, $"start must be in [0, {tokens.Count}].");
        int window = model.Options.ContextLength;
        var traced = new List<TokenRouting>();
        bool wasTraining = model.training;
        model.eval();
        try
        {
            int head = Math.Min(tokens.Count, window);
            if (start < head) traced.AddRange(Route(model, tokens, 0, head, start));
            for (int p = Math.Max(start, head); p < tokens.Count; p++) traced.AddRange(Route(model, tokens, p - window + 1, window, p));
        }
        finally
        {
            if (wasTraining) model.train();
        }

        return traced;
    }

    /// <summary>One forward over tokens [from, from + count); the routing of positions [first, from + count).</summary>
    private static IEnumerable<TokenRouting> Route(MoeForCausalLM model, IReadOnlyList<long> tokens, int from, int count, int first)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.inference_mode();
        var ids = torch.tensor(tokens.Skip(from).Take(count).ToArray(), 1, count, device: model.Device); // (1, T)
        using var output = model.call(new CausalLMInput(ids, RouterStatistics: false, OutputRouterLogits: true));
        var layers = output.Routing!.Select(r => (r.Layer, Experts: r.SelectedExperts.to(ScalarType.Int32).cpu().data<int>().ToArray(),
            Weights: r.Weights.to(ScalarType.Float32).cpu().data<float>().ToArray())).ToList(); // each (T·k)
        int k = model.TopK;
        var routed = new List<TokenRouting>();
        for (int p = first; p < from + count; p++)
        {
            int row = (p - from) * k;
            routed.Add(new TokenRouting(p, tokens[p], layers.Select(l => new LayerChoice(l.Layer, l.Experts[row..(row + k)], l.Weights[row..(row + k)])).ToList()));
        }

        return routed;
    }
}
