using YingHub.Moe.Testing;
using YingHub.Moe.Training.Adapters.Hydra;

namespace YingHub.Moe.Training.Tests.Adapters.Hydra;

public sealed class DomainCorpusTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "hydra-corpus-" + Guid.NewGuid().ToString("N"));

    public DomainCorpusTests()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "code", "sub"));
        File.WriteAllText(Path.Combine(_dir, "poem.txt"), string.Concat(Enumerable.Range(0, 50).Select(i => $"line {i:D2} of the poem.\n")));
        for (int f = 0; f < 6; f++) File.WriteAllText(Path.Combine(_dir, "code", $"F{f}.cs"), $"class C{f} {{ int x = {f}; }}");
        File.WriteAllText(Path.Combine(_dir, "code", "sub", "G.cs"), "class G { }");
        File.WriteAllText(Path.Combine(_dir, "code", "notes.md"), "not code");
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private DomainSource[] Sources() =>
    [
        DomainSource.FromFile("poem", Path.Combine(_dir, "poem.txt"), chunkCharacters: 50),
        DomainSource.FromDirectory("code", Path.Combine(_dir, "code"), "*.cs", recursive: true),
    ];

    [Fact]
    public void Split_is_deterministic_under_a_seed_and_disjoint()
    {
        var a = DomainCorpus.Build(Sources(), new DomainCorpusOptions { Seed = 4, HeldOutFraction = 0.25 });
        var b = DomainCorpus.Build(Sources(), new DomainCorpusOptions { Seed = 4, HeldOutFraction = 0.25 });
        var c = DomainCorpus.Build(Sources(), new DomainCorpusOptions { Seed = 5, HeldOutFraction = 0.25 });
        Assert.Equal(a.Train, b.Train);
        Assert.Equal(a.HeldOut, b.HeldOut);
        Assert.NotEqual(a.HeldOut, c.HeldOut);
        Assert.Empty(a.Train.Select(d => d.Text).Intersect(a.HeldOut.Select(d => d.Text)));

        // 50 lines of 21 characters = 1050 characters: 21 documents of 50; code: 7 files (.md excluded, sub/ included)
        Assert.Equal(21, a.Train.Count(d => d.Domain == "poem") + a.HeldOut.Count(d => d.Domain == "poem"));
        Assert.Equal(5, a.HeldOut.Count(d => d.Domain == "poem"));   // round(0.25 · 21)
        Assert.Equal(7, a.Train.Count(d => d.Domain == "code") + a.HeldOut.Count(d => d.Domain == "code"));
        Assert.Equal(2, a.HeldOut.Count(d => d.Domain == "code"));   // round(0.25 · 7)
        Assert.Equal(["poem", "code"], a.Domains);
    }

    [Fact]
    public void Saves_and_loads_the_split()
    {
        var corpus = DomainCorpus.Build(Sources());
        string path = Path.Combine(_dir, "out", "corpus.json");
        corpus.Save(path);
        var loaded = DomainCorpus.Load(path);
        Assert.Equal(corpus.Train, loaded.Train);
        Assert.Equal(corpus.HeldOut, loaded.HeldOut);
        File.WriteAllText(path, "{\"format\":\"other\",\"version\":1}");
        Assert.Throws<InvalidDataException>(() => DomainCorpus.Load(path));
    }

    [Fact]
    public void Sources_cut_by_blank_lines_cap_documents_and_drop_duplicates()
    {
        string file = Path.Combine(_dir, "paragraphs.txt");
        File.WriteAllText(file, "one one\n\ntwo two\n  \nthree three three three\n\n\n");
        var packed = new DomainSource("p", file, Split: DocumentSplit.BlankLines, ChunkCharacters: 16).Read();
        Assert.Equal(["one one\n\ntwo two", "three three three three"], packed.Select(d => d.Text));

        File.Copy(file, Path.Combine(_dir, "copy.txt"));
        var corpus = DomainCorpus.Build([new DomainSource("p", _dir, "*.txt", Split: DocumentSplit.WholeFile)], new DomainCorpusOptions { HeldOutFraction = 0 });
        Assert.Equal(2, corpus.Train.Count);                     // poem.txt and one of the two identical files
        var capped = DomainCorpus.Build([DomainSource.FromFile("poem", Path.Combine(_dir, "poem.txt"), 50, maxDocuments: 5)]);
        Assert.Equal(5, capped.Train.Count + capped.HeldOut.Count);

        Assert.Contains("matches '*.py'", Assert.Throws<FileNotFoundException>(() => DomainSource.FromDirectory("x", _dir, "*.py").Read()).Message);
        Assert.Contains("ChunkCharacters = 0", Assert.Throws<ArgumentException>(() => DomainSource.FromFile("x", file, 0).Read()).Message);
    }

    [SharedDataFact("tinyshakespeare.txt")]
    public void The_default_corpus_has_three_domains()
    {
        string licenses = Path.Combine(_dir, "licenses");               // a stand-in for /usr/share/common-licenses
        Directory.CreateDirectory(licenses);
        File.WriteAllText(Path.Combine(licenses, "MIT"), "Permission is hereby granted, free of charge, to any person obtaining a copy");
        var corpus = DomainCorpus.BuildDefault(SharedData.Require("tinyshakespeare.txt"), Path.Combine(_dir, "code"), licenses, maxDocumentsPerDomain: 20);
        Assert.Equal(["shakespeare", "license", "csharp"], corpus.Domains);
        Assert.Equal(20, corpus.Train.Concat(corpus.HeldOut).Count(d => d.Domain == "shakespeare"));
    }
}
