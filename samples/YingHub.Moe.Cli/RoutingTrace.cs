using System.Globalization;
using System.Text;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Training.Analysis;

namespace YingHub.Moe.Cli;

/// <summary><c>yinghub generate --trace-routing</c>: the experts and gate weights each generated token used in every MoE layer.</summary>
internal static class RoutingTrace
{
    /// <summary>The routing of the <paramref name="generated"/> tokens, each with the prompt and the tokens before it as context.</summary>
    public static IReadOnlyList<TokenRouting> Trace(MoeForCausalLM model, int[] prompt, IReadOnlyList<long> generated) =>
        RoutingTracer.Trace(model, [.. prompt.Select(i => (long)i), .. generated], prompt.Length);

    /// <summary>
    /// One line per token: its position, its text, and per MoE layer <c>L{layer}: expert (weight) ...</c>, e.g.
    /// <c>12 'e'  L0: 3 (0.71) 1 (0.29) | L1: 0 (1.00)</c>.
    /// </summary>
    public static string Format(IReadOnlyList<TokenRouting> trace, ITextTokenizer tokenizer)
    {
        var text = new StringBuilder("routing (experts and gate weights per MoE layer):\n");
        foreach (var token in trace)
        {
            string piece = tokenizer.Decode([(int)token.TokenId]).Replace("\n", "\\n").Replace("\t", "\\t").Replace("\r", "\\r");
            string layers = string.Join(" | ", token.Layers.Select(l => $"L{l.Layer}: " + string.Join(" ",
                l.Experts.Zip(l.Weights, (e, w) => string.Create(CultureInfo.InvariantCulture, $"{e} ({w:F2})")))));
            text.Append(CultureInfo.InvariantCulture, $"{token.Position,5} '{piece}'  {layers}\n");
        }

        return text.ToString();
    }
}
