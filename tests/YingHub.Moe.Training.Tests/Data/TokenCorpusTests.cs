using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Training.Data;

namespace YingHub.Moe.Training.Tests.Data;

public sealed class TokenCorpusTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("yinghub-corpus-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string name, string text)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void Char_corpus_is_cached_as_uint16_and_reads_back_the_encoding()
    {
        string text = string.Concat(Enumerable.Range(0, 400).Select(i => $"line {i}: to be, or not to be\n"));
        string path = Write("a.txt", text);
        var tokenizer = CharTokenizer.FromCorpus(text);
        using var corpus = TokenCorpus.Open(path, tokenizer);
        int[] expected = tokenizer.Encode(text);
        Assert.Equal(expected.Length, corpus.Count);
        var all = new long[corpus.Count];
        corpus.Read(0, all);
        Assert.Equal(expected.Select(i => (long)i), all);
        Assert.Equal(64 + 2L * expected.Length, new FileInfo(corpus.CachePath).Length);

        // a second open reuses the cache
        var written = File.GetLastWriteTimeUtc(corpus.CachePath);
        using (var again = TokenCorpus.Open(path, tokenizer)) Assert.Equal(corpus.Count, again.Count);
        Assert.Equal(written, File.GetLastWriteTimeUtc(corpus.CachePath));
    }

    [Fact]
    public void Large_vocabularies_use_uint32_and_chunked_tokenization_equals_whole_text_encoding()
    {
        // > 1 M characters forces several chunks; cl100k has more than 65,536 ids
        string text = string.Concat(Enumerable.Range(0, 30000).Select(i => $"Paragraph {i} says hello world.\n  indented {i % 7}\n"));
        string path = Write("big.txt", text);
        var tokenizer = TiktokenTextTokenizer.Cl100k();
        using var corpus = TokenCorpus.Open(path, tokenizer);
        int[] expected = tokenizer.Encode(text);
        Assert.Equal(expected.Length, corpus.Count);
        Assert.Equal(64 + 4L * expected.Length, new FileInfo(corpus.CachePath).Length);
        var tail = new long[100];
        corpus.Read(corpus.Count - 100, tail);
        Assert.Equal(expected[^100..].Select(i => (long)i), tail);
    }

    [Fact]
    public void A_changed_corpus_or_tokenizer_gets_a_new_cache()
    {
        string path = Write("c.txt", "abcabc\n");
        using (var first = TokenCorpus.Open(path, CharTokenizer.FromCorpus("abc\n"))) Assert.Equal(7, first.Count);
        File.WriteAllText(path, "abcabcabc\n");
        File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddMinutes(1));
        using (var second = TokenCorpus.Open(path, CharTokenizer.FromCorpus("abc\n"))) Assert.Equal(10, second.Count);
        using (var other = TokenCorpus.Open(path, new CharTokenizer("cba\n")))
        {
            Assert.Equal(2, other[0]); // a different vocabulary has its own cache: 'a' is id 2 here, 1 above
        }

        var ex = Assert.Throws<ArgumentException>(() => TokenCorpus.Open(path, CharTokenizer.FromCorpus("ab")));
        Assert.Contains("'c'", ex.Message);
        Assert.Throws<FileNotFoundException>(() => TokenCorpus.Open(Path.Combine(_dir, "none.txt"), CharTokenizer.FromCorpus("a")));
    }

    [Fact]
    public void Blocks_are_contiguous_targets_are_shifted_and_the_seed_fixes_them()
    {
        string text = string.Concat(Enumerable.Range(0, 2000).Select(i => (char)('a' + i % 26)));
        string path = Write("d.txt", text);
        var tokenizer = CharTokenizer.FromCorpus(text);
        using var corpus = TokenCorpus.Open(path, tokenizer);
        var (train, validation) = BlockSampler.Split(corpus, blockSize: 8, seed: 3);
        var (x, y) = train.Next(4);
        Assert.Equal(new long[] { 4, 8 }, x.shape);
        long[] xs = x.data<long>().ToArray(), ys = y.data<long>().ToArray();
        for (int b = 0; b < 4; b++)
        {
            for (int t = 0; t < 8; t++)
            {
                if (t > 0) Assert.Equal((xs[b * 8 + t - 1] + 1) % 26, xs[b * 8 + t]); // contiguous text
                Assert.Equal((xs[b * 8 + t] + 1) % 26, ys[b * 8 + t]);                // next-token targets
            }
        }

        var (again, _) = BlockSampler.Split(corpus, blockSize: 8, seed: 3);
        Assert.Equal(xs, again.Next(4).Inputs.data<long>().ToArray());
        var (skipped, _) = BlockSampler.Split(corpus, blockSize: 8, seed: 3);
        skipped.Skip(4);
        Assert.Equal(train.Drawn, skipped.Drawn);
        Assert.Equal(train.Next(4).Inputs.data<long>().ToArray(), skipped.Next(4).Inputs.data<long>().ToArray());
        Assert.Throws<ArgumentException>(() => new BlockSampler(corpus, 1990, 5, 8, 0));
    }
}
