using YingHub.Moe.Training.Adapters.Hydra;

namespace YingHub.Moe.Training.Tests.Adapters.Hydra;

public sealed class TfIdfEmbedderTests
{
    [Fact]
    public void Matches_hand_computed_numbers_on_three_documents()
    {
        // "a" has one character: scikit-learn's token pattern skips it. Terms: cat, dog, sat, the; N = 3.
        string[] docs = ["A cat sat", "the cat", "the dog dog"];
        var embedder = TfIdfEmbedder.Fit(docs, new TfIdfOptions());
        Assert.Equal(["cat", "dog", "sat", "the"], embedder.Vocabulary);
        double idf2 = Math.Log(4.0 / 3) + 1, idf1 = Math.Log(4.0 / 2) + 1; // df = 2 and df = 1
        Assert.Equal(idf2, embedder.Idf[0], 1e-6);
        Assert.Equal(idf1, embedder.Idf[1], 1e-6);
        using var e = embedder.Embed(docs);
        float[] v = e.data<float>().ToArray();
        double[][] expected =
        [
            [0.6053485081062916, 0, 0.7959605415681652, 0],   // (idf2, 0, idf1, 0) / ‖·‖
            [Math.Sqrt(0.5), 0, 0, Math.Sqrt(0.5)],            // equal weights
            [0, 0.9347019636214325, 0, 0.3554324678504174],   // (0, 2·idf1, 0, idf2) / ‖·‖
        ];
        for (int d = 0; d < 3; d++)
            for (int j = 0; j < 4; j++) Assert.Equal(expected[d][j], v[d * 4 + j], 1e-6);

        using var unseen = embedder.Embed(["zebra", "dog"]);  // no known term: a zero row
        Assert.Equal([0f, 0f, 0f, 0f, 0f, 1f, 0f, 0f], unseen.data<float>().ToArray());
    }

    [Fact]
    public void Char_ngrams_collapse_white_space_runs_and_max_features_keeps_the_most_frequent()
    {
        var options = new TfIdfOptions { Analyzer = TfIdfAnalyzer.Char, NGramMin = 2, NGramMax = 2, Lowercase = false };
        var counts = TfIdfEmbedder.Count("ab  Ab", options);    // "ab Ab": ab, "b ", " A", Ab
        Assert.Equal(new Dictionary<string, int> { ["ab"] = 1, ["b "] = 1, [" A"] = 1, ["Ab"] = 1 }, counts);
        var words = TfIdfEmbedder.Count("to be or not to be", new TfIdfOptions { NGramMin = 1, NGramMax = 2 });
        Assert.Equal(2, words["to be"]);
        Assert.Equal(1, words["be or"]);
        var top = TfIdfEmbedder.Fit(["aa aa aa bb", "bb cc"], new TfIdfOptions { MaxFeatures = 2 });
        Assert.Equal(["aa", "bb"], top.Vocabulary);
    }

    [Fact]
    public void Bad_options_are_named()
    {
        var options = new TfIdfOptions { NGramMin = 3, NGramMax = 2, MaxFeatures = 0 };
        Assert.Equal(["NGramMax", "MaxFeatures"], options.GetValidationErrors().Select(e => e.Field));
        Assert.Contains("No term", Assert.Throws<ArgumentException>(() => TfIdfEmbedder.Fit(["a b c"])).Message);
    }
}
