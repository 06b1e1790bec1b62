using YingHub.Moe.Rewards.Text;

namespace YingHub.Moe.Rewards.Tests.Text;

public sealed class ParsedTextTests
{
    [Fact]
    public void SplitsWordsKeepingInnerAndLeadingApostrophes()
    {
        Assert.Equal(["'tis", "lov'd", "summer's", "day", "light", "lovers"],
            WordTokenizer.Words("\u2018Tis  lov\u2019d, summer's day-light; lovers' "));
    }

    [Fact]
    public void LinesWithoutWordsSeparateStanzas()
    {
        ParsedText text = ParsedText.Parse("One two\r\nthree\r\n\r\n-- --\nfour five six\n");
        Assert.Equal([(0, 2), (0, 1), (1, 3)], text.Lines.Select(l => (l.Stanza, l.TokenCount)));
        Assert.Equal("three", text.Original.Substring(text.Lines[1].Start, text.Lines[1].Length));
    }

    [Fact]
    public void EqualWordsShareAnId()
    {
        ParsedText text = ParsedText.Parse("The cat, THE hat");
        Assert.Equal([0, 1, 0, 2], text.TokenIds);
    }
}
