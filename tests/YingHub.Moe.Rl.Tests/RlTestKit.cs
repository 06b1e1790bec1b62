using TorchSharp;
using TorchSharp.Modules;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Rewards;
using static TorchSharp.torch;

namespace YingHub.Moe.Rl.Tests;

/// <summary>A reward the test controls: the share of one letter in the response. It counts the responses it scores.</summary>
internal sealed class LetterShare(char letter) : IRewardFunction
{
    /// <summary>Responses scored so far.</summary>
    public int Scored { get; private set; }

    public RewardResult Score(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        Scored++;
        double share = text.Length == 0 ? 0 : text.Count(c => c == letter) / (double)text.Length;
        return new RewardResult(share, new Dictionary<string, double> { ["letter_share"] = share });
    }
}

/// <summary>A tiny real model and tokenizer for RL tests.</summary>
internal static class TinyPolicy
{
    public const string Vocabulary = "abcdefgh .";

    public static MoeModelOptions Options() => new()
    {
        VocabSize = Vocabulary.Length, ContextLength = 32, HiddenSize = 32, NumHeads = 2, NumLayers = 2, NumExperts = 4, TopK = 2,
        ExpertMultiplier = 2, Dropout = 0, Router = RouterKind.NoisyTopK, LoadBalancingCoef = 0.01,
    };

    public static (MoeForCausalLM Model, CharTokenizer Tokenizer) Create(int seed = 0)
    {
        torch.manual_seed(seed);
        return (new MoeForCausalLM(Options()), new CharTokenizer(Vocabulary));
    }

    public static List<IReadOnlyList<long>> Prompts(CharTokenizer tokenizer, int count, int seed, int length = 4)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count)
            .Select(_ => (IReadOnlyList<long>)tokenizer.Encode(new string(Enumerable.Range(0, length).Select(_ => Vocabulary[random.Next(Vocabulary.Length)]).ToArray())).Select(i => (long)i).ToList())
            .ToList();
    }
}

/// <summary>Host copies of parameters, compared bit for bit.</summary>
internal static class Weights
{
    /// <summary>Each named parameter's values (a copy).</summary>
    public static Dictionary<string, float[]> Snapshot(IEnumerable<(string name, Parameter parameter)> parameters) =>
        parameters.ToDictionary(p => p.name, p => Values(p.parameter));

    /// <summary>A tensor's values as fp32 on the host (a copy).</summary>
    public static float[] Values(Tensor t)
    {
        using var scope = torch.NewDisposeScope();
        return t.detach().to(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
    }

    /// <summary>Whether two copies hold the same bits (NaN payloads included).</summary>
    public static bool Identical(float[] a, float[] b) =>
        a.Length == b.Length && a.Select(BitConverter.SingleToInt32Bits).SequenceEqual(b.Select(BitConverter.SingleToInt32Bits));

    /// <summary>The names whose values differ between two snapshots of the same parameters.</summary>
    public static List<string> Changed(Dictionary<string, float[]> before, Dictionary<string, float[]> after)
    {
        Assert.Equal(before.Keys.Order(StringComparer.Ordinal), after.Keys.Order(StringComparer.Ordinal));
        return before.Where(kv => !Identical(kv.Value, after[kv.Key])).Select(kv => kv.Key).ToList();
    }
}
