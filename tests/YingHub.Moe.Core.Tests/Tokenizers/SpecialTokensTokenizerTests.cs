using YingHub.Moe.Core.Tokenizers;

namespace YingHub.Moe.Core.Tests.Tokenizers;

/// <summary>Special tokens added after a char vocabulary: ids, matching, decoding, the checkpoint file, errors.</summary>
public class SpecialTokensTokenizerTests
{
    // base vocabulary: ' ' = 0, '<' = 1, '>' = 2, 'R' = 3, '[' = 4, ']' = 5, '_' = 6, 'a' = 7, 'b' = 8
    private static readonly CharTokenizer Chars = new(" <>R[]_ab");

    [Fact]
    public void Special_tokens_take_the_ids_after_the_base_and_win_over_their_characters()
    {
        var tokenizer = new SpecialTokensTokenizer(Chars, ["[R]", "<a>", "<a>b"]);
        Assert.Equal(12, tokenizer.VocabSize);
        Assert.Equal(9, tokenizer.IdOf("[R]"));
        Assert.Equal(11, tokenizer.IdOf("<a>b"));
        // "<a>b" is longer than "<a>", so it wins where both match; "[R" without its "]" is plain text
        Assert.Equal(new[] { 9, 7, 11, 0, 10, 7, 4, 3 }, tokenizer.Encode("[R]a<a>b <a>a[R"));
        Assert.Equal(new[] { 7, 8 }, tokenizer.Encode("ab"));
        Assert.Empty(tokenizer.Encode(""));
    }

    [Fact]
    public void Decoding_writes_special_tokens_as_their_strings()
    {
        var tokenizer = new SpecialTokensTokenizer(Chars, ["[R]", "<extra_id_0>"]);
        Assert.Equal("a[R]b<extra_id_0><extra_id_0> a", tokenizer.Decode([7, 9, 8, 10, 10, 0, 7]));
        const string text = "[R] ab<extra_id_0>ba";
        Assert.Equal(text, tokenizer.Decode(tokenizer.Encode(text)));
        Assert.Contains("outside the vocabulary [0, 11)", Assert.Throws<ArgumentException>(() => tokenizer.Decode([7, 11])).Message);
    }

    [Fact]
    public void The_checkpoint_file_keeps_the_special_tokens()
    {
        string dir = Directory.CreateTempSubdirectory("yinghub-special-").FullName;
        try
        {
            var tokenizer = new SpecialTokensTokenizer(Chars, ["[S]", "<extra_id_0>", "<extra_id_1>"]);
            TokenizerFiles.Save(tokenizer, dir);
            var loaded = Assert.IsType<SpecialTokensTokenizer>(TokenizerFiles.Load(dir));
            Assert.Equal(tokenizer.SpecialTokens, loaded.SpecialTokens);
            Assert.Equal(Chars.Vocabulary, Assert.IsType<CharTokenizer>(loaded.Base).Vocabulary);
            Assert.Equal(tokenizer.Encode("a[S]b<extra_id_1>"), loaded.Encode("a[S]b<extra_id_1>"));
            Assert.Equal(12, loaded.VocabSize);

            // a base without special tokens stays a plain tokenizer
            TokenizerFiles.Save(Chars, dir);
            Assert.IsType<CharTokenizer>(TokenizerFiles.Load(dir));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Bad_special_tokens_are_refused_by_name()
    {
        Assert.Contains("'[R]' is repeated", Assert.Throws<ArgumentException>(() => new SpecialTokensTokenizer(Chars, ["[R]", "[X]", "[R]"])).Message);
        Assert.Contains("empty", Assert.Throws<ArgumentException>(() => new SpecialTokensTokenizer(Chars, ["[R]", ""])).Message);
        Assert.Contains("No special tokens", Assert.Throws<ArgumentException>(() => new SpecialTokensTokenizer(Chars, [])).Message);
        var once = new SpecialTokensTokenizer(Chars, ["[R]"]);
        Assert.Throws<ArgumentException>(() => new SpecialTokensTokenizer(once, ["[X]"]));
        Assert.Contains("'[X]' is not a special token", Assert.Throws<KeyNotFoundException>(() => once.IdOf("[X]")).Message);
    }
}
