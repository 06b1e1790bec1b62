using YingHub.Moe.Testing;

namespace YingHub.Moe.Rewards.Tests.Scoring;

public sealed class MeterTests
{
    private static LineAnalysis Line(string text) => Assert.Single(CmuLexicon.Reward().Analyze(text).Lines);

    [SharedDataFact(CmuLexicon.File)]
    public void ShallICompareTheeIsIambicPentameter()
    {
        LineAnalysis line = Line("Shall I compare thee to a summer's day?");
        Assert.Equal(10, line.Syllables);
        Assert.Equal("0101010101", line.Stress);
        Assert.True(line.Meter >= 0.95, $"meter {line.Meter}");
    }

    [SharedDataFact(CmuLexicon.File)]
    public void AllowsAFeminineEnding()
    {
        // to BE or NOT to BE that IS the QUES-tion: an unstressed 11th syllable.
        LineAnalysis line = Line("To be, or not to be, that is the question:");
        Assert.Equal(11, line.Syllables);
        Assert.Equal("01010101010", line.Stress);
        Assert.True(line.Meter >= 0.95, $"meter {line.Meter}");
    }

    [SharedDataFact(CmuLexicon.File)]
    public void AllowsAnInitialTrochee()
    {
        // SOME-time too HOT the EYE of HEA-ven SHINES: "sometime" is stressed on its first syllable.
        LineAnalysis line = Line("Sometime too hot the eye of heaven shines,");
        Assert.Equal(10, line.Syllables);
        Assert.Equal("1001010101", line.Stress);
        Assert.True(line.Meter >= 0.95, $"meter {line.Meter}");
    }

    [SharedDataFact(CmuLexicon.File)]
    public void AStressClashInsideTheLineCostsOneFifth()
    {
        // I(0) am(1) HAP(2) py(3) now(4) and(5) so(6) I(7) can(8) go(9): every word but "happy" is monosyllabic,
        // so the only cost is HAP on a weak beat (1) plus -py promoted on a strong one (0.5), out of 5.
        LineAnalysis line = Line("I am happy now and so I can go");
        Assert.Equal(10, line.Syllables);
        Assert.Equal(1.0 - (1.0 + 0.5) / 5, line.Meter, 9);   // HAP on a weak beat (1) + py promoted (0.5), over 5
    }

    [SharedDataFact(CmuLexicon.File)]
    public void ShortAndProseLinesScoreLow()
    {
        Assert.Equal(0.0, Line("Shall I compare thee").Meter, 9);                // 5 syllables short: cost 5
        Assert.True(Line("The internet is a computer network that connects millions of computers worldwide").Meter < 0.3);
    }

    [Fact]
    public void RunOnLinesScoreZero()
    {
        // 20,000 one-syllable words on one line: far beyond 15 syllables, so the fit is 0 without any alignment.
        // (How long it takes is a benchmark's question, not a test's.)
        string line = string.Join(' ', Enumerable.Repeat("day", 20_000));
        LineAnalysis analysis = Assert.Single(new ShakespeareReward(Rewards.Pronunciation.PronunciationLexicon.Empty).Analyze(line).Lines);
        Assert.Equal((0.0, 20_000), (analysis.Meter, analysis.Syllables));
        Assert.StartsWith("0101", analysis.Stress);
    }
}
