using Xunit.Abstractions;
using YingHub.Moe.Rewards.Pronunciation;
using YingHub.Moe.Testing;

namespace YingHub.Moe.Rewards.Tests.Pronunciation;

public sealed class FallbackAgreementTests(ITestOutputHelper output)
{
    private const int SampleSize = 2000;
    private const int Seed = 20240607;
    private const double RequiredAgreement = 0.85;

    [SharedDataFact(CmuLexicon.File)]
    public void FallbackSyllableCountsMatchTheDictionaryOnASeededSample()
    {
        PronunciationLexicon lexicon = CmuLexicon.Instance;
        string[] words = lexicon.Words.Where(w => w.All(c => c is >= 'a' and <= 'z' or '\'')).ToArray();
        var random = new Random(Seed);
        string[] sample = random.GetItems(words, SampleSize * 2).Distinct().Take(SampleSize).ToArray();
        Assert.Equal(SampleSize, sample.Length);

        int firstAgrees = 0, anyAgrees = 0;
        var misses = new List<string>();
        foreach (string word in sample)
        {
            int[] counts = lexicon.GetPronunciations(word).Select(SyllablesOf).ToArray();
            int guess = RuleBasedPronouncer.CountSyllables(word);
            if (guess == counts[0]) firstAgrees++;
            if (counts.Contains(guess)) anyAgrees++;
            else misses.Add($"{word}:{guess}/{counts[0]}");
        }

        double firstRate = (double)firstAgrees / SampleSize, anyRate = (double)anyAgrees / SampleSize;
        output.WriteLine($"fallback agreement: first pronunciation {firstRate:P1}, any pronunciation {anyRate:P1}");
        output.WriteLine(string.Join(" ", misses.Take(150)));
        Assert.True(firstRate >= RequiredAgreement, $"agreement with the first pronunciation {firstRate:P1} < {RequiredAgreement:P0}");
    }

    /// <summary>Independent count: the ARPABET vowels are the phonemes that carry a stress digit.</summary>
    private static int SyllablesOf(string arpabet) => arpabet.Split(' ').Count(p => char.IsDigit(p[^1]));
}
