using System.Text;
using Xunit.Abstractions;
using YingHub.Moe.Rewards.Pronunciation;
using YingHub.Moe.Testing;

namespace YingHub.Moe.Rewards.Tests.Pronunciation;

public sealed class PronunciationLexiconTests(ITestOutputHelper output)
{
    /// <summary>The entry count of cmudict.dict, from the shared data README.</summary>
    private const int CmuDictEntries = 135_155;

    [SharedDataFact(CmuLexicon.File)]
    public void LoadsTheFullDictionary()
    {
        // how fast it loads is a benchmark's question (a wall-clock limit fails on a busy machine)
        PronunciationLexicon lexicon = PronunciationLexicon.Load(SharedData.Require(CmuLexicon.File));
        output.WriteLine($"loaded {lexicon.PronunciationCount} pronunciations of {lexicon.WordCount} words");
        Assert.Equal(CmuDictEntries, lexicon.PronunciationCount);
        Assert.True(lexicon.WordCount < lexicon.PronunciationCount); // alternates are chained under their word
    }

    [SharedDataFact(CmuLexicon.File)]
    public void LookupsIgnoreCaseAndReturnAlternatesInOrder()
    {
        PronunciationLexicon lexicon = CmuLexicon.Instance;
        Assert.Equal(["D EY1"], lexicon.GetPronunciations("DAY"));
        Assert.Equal(["EH1 V ER0 IY0", "EH1 V R IY0"], lexicon.GetPronunciations("Every"));
        Assert.Equal(["AH0", "EY1"], lexicon.GetPronunciations("a"));     // a(2) comes after a's in the file
        Assert.Empty(lexicon.GetPronunciations("xyzzyplugh"));
    }

    [SharedDataFact(CmuLexicon.File)]
    public void LookupsHandleApostrophes()
    {
        PronunciationLexicon lexicon = CmuLexicon.Instance;
        Assert.Equal(["T IH1 Z"], lexicon.GetPronunciations("'Tis"));
        Assert.Equal(["S AH1 M ER0 Z"], lexicon.GetPronunciations("summer\u2019s"));
        Assert.True(lexicon.Contains("Summer's"));
    }

    [Fact]
    public void ParsesCommentsAlternatesTabsAndCrLfFromAStream()
    {
        const string text = ";;; a header comment\r\n# another\r\nday  D EY1\r\n\r\nread\tR IY1 D # verb\r\nread(2) R EH1 D\r\n";
        PronunciationLexicon lexicon = PronunciationLexicon.Load(new MemoryStream(Encoding.UTF8.GetBytes(text)));

        Assert.Equal(2, lexicon.WordCount);
        Assert.Equal(3, lexicon.PronunciationCount);
        Assert.Equal(["R IY1 D", "R EH1 D"], lexicon.GetPronunciations("read"));
    }

    [Fact]
    public void RejectsUnknownPhonemesNamingTheLine()
    {
        var stream = new MemoryStream(Encoding.UTF8.GetBytes("day D EY1\r\nbad B QQ1 D # a comment\r\n"));
        var error = Assert.Throws<PronunciationDictionaryFormatException>(() => PronunciationLexicon.Load(stream));
        Assert.Equal("stream: line 2: unknown phoneme 'QQ1' in \"bad B QQ1 D # a comment\".", error.Message);
        Assert.Equal(("stream", 2, "bad B QQ1 D # a comment"), (error.File, error.LineNumber, error.Line));
        Assert.IsAssignableFrom<FormatException>(error);
    }

    [Fact]
    public void RejectsAWordWithoutPhonemesNamingTheFileAndTheLine()
    {
        string path = Path.Combine(Directory.CreateTempSubdirectory("lexicon").FullName, "bad.dict");
        try
        {
            File.WriteAllText(path, ";;; header\nday D EY1\n\nlonely\n");
            var error = Assert.Throws<PronunciationDictionaryFormatException>(() => PronunciationLexicon.Load(path));
            Assert.Equal($"{path}: line 4: a word without phonemes in \"lonely\".", error.Message);
            Assert.DoesNotContain('\n', error.Message);
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(path)!, recursive: true);
        }
    }

    [Fact]
    public void RejectsMissingArguments()
    {
        Assert.Throws<ArgumentNullException>("path", () => PronunciationLexicon.Load((string)null!));
        Assert.Throws<ArgumentException>("path", () => PronunciationLexicon.Load(""));
        Assert.Throws<ArgumentNullException>("stream", () => PronunciationLexicon.Load((Stream)null!));
        Assert.Throws<ArgumentNullException>("word", () => PronunciationLexicon.Empty.GetPronunciations(null!));
    }
}
