using YingHub.Moe.Rewards.Pronunciation;
using YingHub.Moe.Testing;

namespace YingHub.Moe.Rewards.Tests;

/// <summary>The CMU dictionary of the shared data, loaded once for all tests that only read it.</summary>
internal static class CmuLexicon
{
    public const string File = "cmudict.dict";

    private static readonly Lazy<PronunciationLexicon> Lexicon = new(() => PronunciationLexicon.Load(SharedData.Require(File)));

    public static PronunciationLexicon Instance => Lexicon.Value;

    /// <summary>A reward over the real lexicon with default options.</summary>
    public static ShakespeareReward Reward(ShakespeareRewardOptions? options = null) => new(Instance, options);
}
