using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Testing;

namespace YingHub.Moe.Core.Tests.Tokenizers;

public class CharTokenizerTests
{
    [SharedDataFact("tinyshakespeare.txt")]
    public void Tiny_shakespeare_has_the_65_characters_of_char_rnn_and_round_trips()
    {
        string text = File.ReadAllText(SharedData.Require("tinyshakespeare.txt"));
        var tokenizer = CharTokenizer.FromCorpus(text);
        Assert.Equal(65, tokenizer.VocabSize);
        Assert.Equal("\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", tokenizer.Vocabulary);
        int[] ids = tokenizer.Encode(text);
        Assert.Equal(text.Length, ids.Length);
        Assert.Equal(text, tokenizer.Decode(ids));
    }

    [Fact]
    public void Ids_are_positions_in_the_sorted_vocabulary()
    {
        var tokenizer = CharTokenizer.FromCorpus("hello world");
        Assert.Equal(" dehlorw", tokenizer.Vocabulary);
        Assert.Equal(new[] { 3, 2, 4, 4, 5 }, tokenizer.Encode("hello"));
        Assert.Equal("world", tokenizer.Decode([7, 5, 6, 4, 1]));
        Assert.Equal(tokenizer.Vocabulary, new CharTokenizer(tokenizer.Vocabulary).Vocabulary);
    }

    [Fact]
    public void Unknown_characters_and_ids_are_named()
    {
        var tokenizer = CharTokenizer.FromCorpus("abc");
        var ex = Assert.Throws<ArgumentException>(() => tokenizer.Encode("ab\tz"));
        Assert.Contains("U+0009 at position 2", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => tokenizer.Encode("abz"));
        Assert.Contains("'z' (U+007A) at position 2", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => tokenizer.Decode([0, 3]));
        Assert.Contains("Token id 3 at position 1", ex.Message);
        Assert.Throws<ArgumentException>(() => new CharTokenizer("aba"));
    }
}

public sealed class TokenizerFilesTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("yinghub-tok-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Char_and_cl100k_tokenizers_round_trip_through_files()
    {
        var chars = CharTokenizer.FromCorpus("to be or not to be");
        TokenizerFiles.Save(chars, _dir);
        var back = Assert.IsType<CharTokenizer>(TokenizerFiles.Load(_dir));
        Assert.Equal(chars.Vocabulary, back.Vocabulary);

        TokenizerFiles.Save(TiktokenTextTokenizer.Cl100k(), _dir);
        Assert.Equal(new[] { 9906, 1917 }, TokenizerFiles.Load(_dir).Encode("Hello world"));
    }

    [SharedDataFact("gpt2/vocab.json")]
    public void Gpt2_is_saved_with_its_vocabulary()
    {
        string vocab = SharedData.Require("gpt2/vocab.json");
        TokenizerFiles.Save(TiktokenTextTokenizer.Gpt2(vocab), _dir, vocab);
        Assert.True(File.Exists(Path.Combine(_dir, "vocab.json")));
        Assert.Equal(new[] { 15496, 995 }, TokenizerFiles.Load(_dir).Encode("Hello world"));
        Assert.Throws<ArgumentException>(() => TokenizerFiles.Save(TiktokenTextTokenizer.Gpt2(vocab), _dir));
    }

    [Fact]
    public void Missing_or_unknown_tokenizers_are_reported()
    {
        Assert.Throws<FileNotFoundException>(() => TokenizerFiles.Load(_dir));
        File.WriteAllText(Path.Combine(_dir, TokenizerFiles.FileName), "{\"kind\":\"sentencepiece\",\"vocab_size\":5}");
        Assert.Contains("unknown tokenizer kind 'sentencepiece'", Assert.Throws<InvalidDataException>(() => TokenizerFiles.Load(_dir)).Message);
    }
}
