using YingHub.Moe.Rewards.Text;
using YingHub.Moe.Rl.Rewards;

namespace YingHub.Moe.Rl.Tests.Rewards;

public class TextRewardsTests
{
    [Theory]
    [InlineData('e', "Eel, e!", 3 / 4.0)]        // letters E e l e; punctuation and spaces are not letters
    [InlineData('E', "eel", 2 / 3.0)]            // case-insensitive both ways
    [InlineData('e', "xyz", 0.0)]
    [InlineData('e', "123 !?", 0.0)]             // no letters
    [InlineData('e', "", 0.0)]
    public void Letter_share_counts_letters_only(char letter, string text, double expected)
    {
        Assert.Equal(expected, TextRewards.LetterShare(letter).Score(text).Total, 12);
    }

    [Fact]
    public void Letter_share_needs_a_letter() => Assert.Throws<ArgumentException>(() => TextRewards.LetterShare('1'));

    [Theory]
    [InlineData("The cat the CAT sat", 3 / 5.0)]
    [InlineData("a b c", 1.0)]
    [InlineData("...", 0.0)]
    public void Distinct_words_is_distinct_over_total(string text, double expected)
    {
        Assert.Equal(expected, TextRewards.DistinctWords().Score(text).Total, 12);
    }

    [Theory]
    [InlineData("a b c", 0.75)]                  // 1 − |3 − 4| / 4
    [InlineData("a b c d", 1.0)]
    [InlineData("a b c d e f g h", 0.0)]         // twice the target
    [InlineData("a b c d e f g h i j", 0.0)]     // beyond: clamped
    [InlineData("", 0.0)]
    public void Length_is_closeness_to_the_target_word_count(string text, double expected)
    {
        Assert.Equal(expected, TextRewards.Length(4).Score(text).Total, 12);
    }

    [Fact]
    public void Words_are_the_rewards_own_lower_cased_runs_with_inner_and_leading_apostrophes()
    {
        Assert.Equal(["summer's", "lov'd", "'tis", "e", "mail", "x2"], WordTokenizer.Words("Summer’s lov'd 'tis e-mail X2'"));
    }
}
