using YingHub.Moe.Training.Adapters.Hydra;

namespace YingHub.Moe.Training.Tests.Adapters.Hydra;

public sealed class RoutingEvaluationTests
{
    [Fact]
    public void Majority_vote_purity_and_confusion_on_a_hand_example()
    {
        long[] clusters = [0, 0, 0, 1, 1, 2, 2, 2];
        string?[] domains = ["a", "a", "b", "b", "b", "c", "a", null];
        Assert.Equal(new string?[] { "a", "b", "a", null }.AsEnumerable(), RoutingEvaluation.MajorityDomains(clusters, domains, 4)); // cluster 2: a vs c tie -> a; cluster 3 empty
        Assert.Equal((2 + 2 + 1) / 7.0, RoutingEvaluation.Purity(clusters, domains, 4), 1e-12);

        // held out: a->0 (a), b->1 (b), c->2 (a: wrong), c->3 (none: wrong), unlabelled ignored
        var score = RoutingEvaluation.Score([0, 1, 2, 3, 0], ["a", "b", "a", null], ["a", "b", "c", "c", null]);
        Assert.Equal(2, score.Correct);
        Assert.Equal(4, score.Total);
        Assert.Equal(0.5, score.Accuracy);
        Assert.Equal(["a", "b", "c", "(none)"], score.Domains);
        Assert.Equal([1, 0, 0, 0], score.Confusion[0]);
        Assert.Equal([0, 1, 0, 0], score.Confusion[1]);
        Assert.Equal([1, 0, 0, 1], score.Confusion[2]);
        Assert.Contains("| c | 1 | 0 | 0 | 1 |", score.ToMarkdown());
    }
}
