using TorchSharp;
using YingHub.Moe.Core.Checkpoints;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Training.FineTuning;

namespace YingHub.Moe.Training.Tests.FineTuning;

public sealed class FineTuneStartTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("yinghub-finetune-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static MoeForCausalLM Model(int vocab)
    {
        torch.manual_seed(5);
        return new MoeForCausalLM(new MoeModelOptions
        {
            VocabSize = vocab, ContextLength = 8, HiddenSize = 16, NumHeads = 2, NumLayers = 1, NumExperts = 2, TopK = 1, ExpertMultiplier = 2,
        });
    }

    private string Checkpoint(CharTokenizer tokenizer, int? modelVocab = null)
    {
        string path = Path.Combine(_dir, "ckpt");
        using var model = Model(modelVocab ?? tokenizer.VocabSize);
        MoeCheckpoint.Save(model, path, staging => TokenizerFiles.Save(tokenizer, staging));
        return path;
    }

    [Fact]
    public void Loads_the_checkpoints_weights_and_tokenizer_in_training_mode()
    {
        var tokenizer = CharTokenizer.FromCorpus("abc def\n");
        string path = Checkpoint(tokenizer);
        using var original = MoeCheckpoint.Load(path);

        var start = FineTuneStart.Load(path, requestedTokenizer: "char");
        using var model = start.Model;
        Assert.Equal(Path.GetFullPath(path), start.Directory);
        Assert.Equal(tokenizer.Vocabulary, Assert.IsType<CharTokenizer>(start.Tokenizer).Vocabulary);
        Assert.Equal(tokenizer.VocabSize, start.Options.VocabSize);
        Assert.True(model.training);
        var expected = original.state_dict();
        foreach (var (name, tensor) in model.state_dict()) Assert.True(tensor.allclose(expected[name], rtol: 0, atol: 0), name);
    }

    [Fact]
    public void A_different_tokenizer_kind_fails_before_loading_and_names_both()
    {
        string path = Checkpoint(CharTokenizer.FromCorpus("abc"));
        var ex = Assert.Throws<ArgumentException>(() => FineTuneStart.Load(path, requestedTokenizer: "gpt2"));
        Assert.Contains("gpt2", ex.Message);
        Assert.Contains("char (3 tokens)", ex.Message);
    }

    [Fact]
    public void Characters_outside_the_checkpoints_vocabulary_are_named_and_counted()
    {
        var start = FineTuneStart.Load(Checkpoint(CharTokenizer.FromCorpus("abc \n")));
        using var model = start.Model;
        start.EnsureEncodable("abc cab\n", "ok.txt");
        var ex = Assert.Throws<ArgumentException>(() => start.EnsureEncodable("abz zy\u00e9 a", "new.txt"));
        Assert.StartsWith("new.txt has 3 distinct character(s) (4 occurrences)", ex.Message);
        Assert.Contains("'z' (U+007A), 'y' (U+0079), '\u00e9' (U+00E9)", ex.Message);
    }

    [Fact]
    public void Many_missing_characters_are_summarised()
    {
        var (missing, occurrences) = TokenizerCompatibility.MissingCharacters(new CharTokenizer("a"), "abcdefghijklmnopb");
        Assert.Equal(15, missing.Count);
        Assert.Equal(16, occurrences);
        var ex = Assert.Throws<ArgumentException>(() => TokenizerCompatibility.EnsureEncodable(new CharTokenizer("a"), "abcdefghijklmnopb", "x"));
        Assert.EndsWith("and 5 more.", ex.Message);
    }

    [Fact]
    public void Missing_directory_files_and_a_vocabulary_mismatch_are_reported()
    {
        Assert.Throws<DirectoryNotFoundException>(() => FineTuneStart.Load(Path.Combine(_dir, "nope")));
        Directory.CreateDirectory(Path.Combine(_dir, "empty"));
        var missing = Assert.Throws<FileNotFoundException>(() => FineTuneStart.Load(Path.Combine(_dir, "empty")));
        Assert.Contains("config.json", missing.Message);
        string path = Checkpoint(CharTokenizer.FromCorpus("abc"), modelVocab: 4);
        var ex = Assert.Throws<InvalidDataException>(() => FineTuneStart.Load(path));
        Assert.Contains("4 token ids", ex.Message);
    }

    [Fact]
    public void Tokenizer_difference_is_null_only_for_the_same_ids()
    {
        Assert.Null(TokenizerCompatibility.Difference(new CharTokenizer("abc"), new CharTokenizer("abc")));
        Assert.Contains("position 1", TokenizerCompatibility.Difference(new CharTokenizer("abc"), new CharTokenizer("acb")));
        Assert.Contains("char (4 tokens)", TokenizerCompatibility.Difference(new CharTokenizer("abc"), new CharTokenizer("abcd")));
        Assert.Null(TokenizerCompatibility.KindDifference(new CharTokenizer("abc"), null));
        Assert.Null(TokenizerCompatibility.KindDifference(new CharTokenizer("abc"), "CHAR"));
    }
}
