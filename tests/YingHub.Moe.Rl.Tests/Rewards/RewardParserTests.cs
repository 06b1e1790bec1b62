using YingHub.Moe.Rewards;
using YingHub.Moe.Rewards.Pronunciation;
using YingHub.Moe.Rl.Rewards;

namespace YingHub.Moe.Rl.Tests.Rewards;

public sealed class RewardParserTests : IDisposable
{
    private const string Text = "Shall I compare thee to a summer's day? Thee thee.";
    private readonly string _directory = Directory.CreateTempSubdirectory("rewardparser").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Theory]
    [InlineData("distinct_words")]
    [InlineData(" Distinct_Words ")]
    public void A_builtin_name_gives_the_builtin(string spec)
    {
        var reward = RewardParser.Parse(spec, null);
        // words: shall i compare thee to a summer's day thee thee → 8 distinct of 10
        Assert.Equal(0.8, reward.Score(Text).Total, 12);
    }

    [Fact]
    public void Letter_share_takes_its_letter()
    {
        // letters of "Eel, x" : E e l x → 2 of 4
        Assert.Equal(0.5, RewardParser.Parse("letter_share:e", null).Score("Eel, x").Total, 12);
        Assert.Equal(0.25, RewardParser.Parse("LETTER_SHARE:X", null).Score("Eel, x").Total, 12);
        Assert.Equal(1.0, RewardParser.Parse("length:10", null).Score(Text).Total, 12);
    }

    [Theory]
    [InlineData("letter_share")]
    [InlineData("letter_share:")]
    [InlineData("letter_share:ab")]
    [InlineData("letter_share:1")]
    [InlineData("length:0")]
    [InlineData("length:x")]
    public void A_bad_argument_is_refused_with_an_example(string spec)
    {
        var e = Assert.Throws<ArgumentException>(() => RewardParser.Parse(spec, null));
        Assert.Contains("e.g.", e.Message);
    }

    [Theory]
    [InlineData("rhyme")]
    [InlineData("distinct_words:2")]
    [InlineData("")]
    public void An_unknown_name_is_refused_listing_the_known_ones(string spec)
    {
        var e = Assert.Throws<ArgumentException>(() => RewardParser.Parse(spec, null));
        foreach (string name in RewardParser.KnownNames) Assert.Contains(name, e.Message);
    }

    [Fact]
    public void Shakespeare_without_a_lexicon_says_it_needs_one()
    {
        var e = Assert.Throws<ArgumentException>(() => RewardParser.Parse(RewardParser.Shakespeare, null));
        Assert.Contains("needs a pronunciation lexicon", e.Message);
        Assert.Equal("lexiconPath", e.ParamName);
        Assert.Throws<ArgumentException>(() => RewardParser.Parse("{\"shakespeare\": 1}", null));
        Assert.Throws<ArgumentException>(() => RewardParser.Parse("shakespeare", Path.Combine(_directory, "missing.dict")));
    }

    [Fact]
    public void Inline_weights_give_a_weighted_sum_of_builtins()
    {
        var reward = RewardParser.Parse("{\"distinct_words\": 2, \"letter_share:e\": -1}", null);
        // distinct words 0.8; 38 letters, of which e: compare 1, summer's 1, thee 2 × 3 → 8
        RewardResult r = reward.Score(Text);
        Assert.Equal(2 * 0.8 - 8 / 38.0, r.Total, 12);
        Assert.Equal(0.8, r.Components["distinct_words"], 12);
        Assert.Equal(8 / 38.0, r.Components["letter_share:e/letter_share"], 12);
    }

    [Fact]
    public void A_json_file_gives_the_same_as_inline_weights_and_shakespeare_loads_its_lexicon()
    {
        string lexicon = Path.Combine(_directory, "mini.dict");
        File.WriteAllText(lexicon, "day  D EY1\nmay  M EY1\nthee  DH IY1\nsummer's  S AH1 M ER0 Z\n");
        string weights = Path.Combine(_directory, "weights.json");
        File.WriteAllText(weights, "{ \"shakespeare\": 0.5, \"distinct_words\": 1 }");

        RewardResult r = RewardParser.Parse(weights, lexicon).Score(Text);

        double shakespeare = new ShakespeareReward(PronunciationLexicon.Load(lexicon)).Score(Text).Total;
        Assert.Equal(0.5 * shakespeare + 0.8, r.Total, 12);
        Assert.Contains("shakespeare/meter", r.Components.Keys);
        Assert.IsType<ShakespeareReward>(RewardParser.Parse(RewardParser.Shakespeare, lexicon));
    }

    [Fact]
    public void Empty_weights_say_which_names_to_use()
    {
        var e = Assert.Throws<ArgumentException>(() => RewardParser.Parse(" {} ", null));
        Assert.Contains(RewardParser.DistinctWords, e.Message);
    }

    [Theory]
    [InlineData("{\"distinct_words\": \"1\"}")]
    [InlineData("{\"distinct_words\": 1, \"Distinct_Words\": 2}")]
    [InlineData("{\"distinct_words\": 1,")]
    [InlineData("{\"nope\": 1}")]
    [InlineData("missing.json")]
    public void Bad_weights_are_refused(string spec)
    {
        Assert.Throws<ArgumentException>(() => RewardParser.Parse(spec, null));
    }
}
