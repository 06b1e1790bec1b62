using YingHub.Moe.Rl.Diagnostics;

namespace YingHub.Moe.Rl.Tests.Diagnostics;

public class CollapseGuardTests
{
    private static readonly CollapseMetrics Healthy = new(IdenticalShare: 0, Distinct2: 0.9, Distinct3: 0.95, RepeatedNgramRate: 0.05, MeanLength: 20);
    private static readonly CollapseMetrics Looping = Healthy with { RepeatedNgramRate = 0.8 };

    [Fact]
    public void Collapse_needs_patience_consecutive_flags_and_a_healthy_batch_resets_the_count()
    {
        var guard = new CollapseGuard(new CollapseGuardOptions { Patience = 2 });

        Assert.Equal(CollapseStatus.Healthy, guard.Check(Healthy).Status);
        var first = guard.Check(Looping);
        Assert.Equal((CollapseStatus.Warning, false), (first.Status, first.ShouldStop));
        Assert.Equal(["RepeatedNgramRate 0.8 > MaxRepeatedNgramRate 0.5"], first.Reasons);
        Assert.Equal(CollapseStatus.Healthy, guard.Check(Healthy).Status);
        Assert.Equal(0, guard.ConsecutiveFlagged);
        Assert.Equal(CollapseStatus.Warning, guard.Check(Looping).Status);
        var second = guard.Check(Looping);
        Assert.Equal((CollapseStatus.Collapsed, true), (second.Status, second.ShouldStop));
        guard.Reset();
        Assert.Equal(CollapseStatus.Warning, guard.Check(Looping).Status);
    }

    [Fact]
    public void Without_stop_on_collapse_a_collapse_is_only_reported()
    {
        var guard = new CollapseGuard(new CollapseGuardOptions { Patience = 1, StopOnCollapse = false });
        var verdict = guard.Check(Looping);
        Assert.Equal((CollapseStatus.Collapsed, false), (verdict.Status, verdict.ShouldStop));
    }

    [Fact]
    public void Every_threshold_flags_on_its_side_and_a_null_threshold_is_skipped()
    {
        var options = new CollapseGuardOptions { MaxIdenticalShare = 0.5, MinDistinct2 = 0.3, MinDistinct3 = 0.4, MaxRepeatedNgramRate = 0.2, Patience = 1 };
        var bad = new CollapseMetrics(IdenticalShare: 0.6, Distinct2: 0.2, Distinct3: 0.3, RepeatedNgramRate: 0.25, MeanLength: 5);
        Assert.Equal(
            ["IdenticalShare 0.6 > MaxIdenticalShare 0.5", "Distinct2 0.2 < MinDistinct2 0.3", "Distinct3 0.3 < MinDistinct3 0.4", "RepeatedNgramRate 0.25 > MaxRepeatedNgramRate 0.2"],
            new CollapseGuard(options).Check(bad).Reasons);

        // at the thresholds exactly: healthy
        var edge = new CollapseMetrics(0.5, 0.3, 0.4, 0.2, 5);
        Assert.Equal(CollapseStatus.Healthy, new CollapseGuard(options).Check(edge).Status);

        var off = new CollapseGuardOptions { MaxIdenticalShare = null, MinDistinct2 = null, MinDistinct3 = null, MaxRepeatedNgramRate = null };
        Assert.Equal(CollapseStatus.Healthy, new CollapseGuard(off).Check(bad).Status);
    }

    [Fact]
    public void The_defaults_leave_distinct_n_unchecked()
    {
        var options = new CollapseGuardOptions();
        Assert.Null(options.MinDistinct2);
        Assert.Null(options.MinDistinct3);
        Assert.Equal(CollapseStatus.Healthy, new CollapseGuard().Check(Healthy with { Distinct2 = 0.01, Distinct3 = 0.01 }).Status);
    }

    [Theory]
    [InlineData(nameof(CollapseGuardOptions.MaxIdenticalShare))]
    [InlineData(nameof(CollapseGuardOptions.MinDistinct2))]
    [InlineData(nameof(CollapseGuardOptions.MinDistinct3))]
    [InlineData(nameof(CollapseGuardOptions.MaxRepeatedNgramRate))]
    public void A_threshold_outside_zero_to_one_is_named(string field)
    {
        var options = new CollapseGuardOptions();
        typeof(CollapseGuardOptions).GetProperty(field)!.SetValue(options, 1.5);
        Assert.Equal([field], options.GetValidationErrors().Select(e => e.Field));
        var e = Assert.Throws<ArgumentException>(() => new CollapseGuard(options));
        Assert.Contains(field, e.Message);
    }

    [Fact]
    public void Patience_must_be_positive()
    {
        var options = new CollapseGuardOptions { Patience = 0, MaxIdenticalShare = -0.1 };
        Assert.Equal([nameof(CollapseGuardOptions.MaxIdenticalShare), nameof(CollapseGuardOptions.Patience)], options.GetValidationErrors().Select(e => e.Field));
    }
}
