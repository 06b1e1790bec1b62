using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Training.Data;

namespace YingHub.Moe.Training.Tests;

/// <summary>Small character corpora written to a test's temporary directory.</summary>
internal static class TestCorpus
{
    /// <summary>Writes <paramref name="text"/> to <paramref name="directory"/>/<paramref name="file"/> and opens it with a character tokenizer over it.</summary>
    public static (TokenCorpus Corpus, CharTokenizer Tokenizer) Open(string directory, string text, string file = "text.txt")
    {
        string path = Path.Combine(directory, file);
        File.WriteAllText(path, text);
        var tokenizer = CharTokenizer.FromCorpus(text);
        return (TokenCorpus.Open(path, tokenizer), tokenizer);
    }
}
