using YingHub.Moe.Rl.Curriculum;

namespace YingHub.Moe.Rl.Tests.Curriculum;

public class ResponseLengthSchedulesTests
{
    [Theory]
    [InlineData(0, 48)]
    [InlineData(1, 52)]
    [InlineData(9, 84)]    // 48 + 4·9
    [InlineData(10, 88)]   // 88 + 2·0: the slow phase starts where the fast one would have gone
    [InlineData(11, 90)]
    [InlineData(20, 108)]
    public void YingHub_v2_grows_by_four_then_by_two(long iteration, int expected)
    {
        Assert.Equal(expected, ResponseLengthSchedules.YingHubV2(maxLength: 1000).LengthAt(iteration));
    }

    [Theory]
    [InlineData(0, 48)]
    [InlineData(4, 64)]
    [InlineData(5, 64)]    // 68 capped
    [InlineData(11, 64)]
    [InlineData(long.MaxValue, 64)]
    public void YingHub_v2_is_capped_at_the_context(long iteration, int expected)
    {
        Assert.Equal(expected, ResponseLengthSchedules.YingHubV2(maxLength: 64).LengthAt(iteration));
    }

    [Fact]
    public void Stepwise_grows_every_few_iterations_up_to_its_cap()
    {
        var schedule = ResponseLengthSchedules.Stepwise(start: 10, step: 3, every: 2);
        Assert.Equal([10, 10, 13, 13, 16, 16], Enumerable.Range(0, 6).Select(i => schedule.LengthAt(i)));
        Assert.Equal(int.MaxValue, ResponseLengthSchedules.Stepwise(1, 1).LengthAt(long.MaxValue));
        var capped = ResponseLengthSchedules.Stepwise(start: 10, step: 3, every: 2, maxLength: 12);
        Assert.Equal([10, 10, 12, 12], Enumerable.Range(0, 4).Select(i => capped.LengthAt(i)));
    }

    [Fact]
    public void Constant_is_constant() => Assert.Equal([48, 48, 48], new long[] { 0, 10, long.MaxValue }.Select(ResponseLengthSchedules.Constant(48).LengthAt));

    [Fact]
    public void A_length_below_one_throws_naming_the_iteration()
    {
        var shrinking = ResponseLengthSchedules.Stepwise(start: 5, step: -2);
        Assert.Equal(1, shrinking.LengthAt(2));
        var e = Assert.Throws<InvalidOperationException>(() => shrinking.LengthAt(3));
        Assert.Contains("iteration 3", e.Message);
        Assert.Contains("-1", e.Message);

        var function = ResponseLengthSchedules.FromFunction(i => 5 - (int)i);
        Assert.Equal(1, function.LengthAt(4));
        Assert.Contains("iteration 5", Assert.Throws<InvalidOperationException>(() => function.LengthAt(5)).Message);
    }

    [Fact]
    public void Bad_arguments_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => ResponseLengthSchedules.Constant(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => ResponseLengthSchedules.Stepwise(0, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => ResponseLengthSchedules.Stepwise(1, 1, every: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => ResponseLengthSchedules.Stepwise(1, 1, maxLength: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => ResponseLengthSchedules.YingHubV2(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => ResponseLengthSchedules.Constant(4).LengthAt(-1));
    }

    [Theory]
    [InlineData("constant:48", new[] { 48, 48, 48, 48, 48, 48 })]
    [InlineData(" CONSTANT:48 ", new[] { 48, 48, 48, 48, 48, 48 })]
    [InlineData("linear:48:4", new[] { 48, 52, 56, 60, 60, 60 })]          // capped at 60
    [InlineData("linear:50:4:2", new[] { 50, 50, 54, 54, 58, 58, 60, 60 })]
    [InlineData("linear:50:-1", new[] { 50, 49, 48, 47, 46, 45 })]
    [InlineData("yinghub-v2", new[] { 48, 52, 56, 60, 60, 60 })]
    public void Parse_reads_the_cli_formats(string spec, int[] expected)
    {
        var schedule = ResponseLengthSchedules.Parse(spec, maxLength: 60);
        Assert.Equal(expected, Enumerable.Range(0, expected.Length).Select(i => schedule.LengthAt(i)));
    }

    [Theory]
    [InlineData("constant:0")]
    [InlineData("constant:x")]
    [InlineData("constant:100")]    // above the cap
    [InlineData("linear:48")]
    [InlineData("linear:48:4:0")]
    [InlineData("cosine:48")]
    [InlineData("")]
    public void Parse_refuses_bad_specifications(string spec)
    {
        var e = Assert.Throws<ArgumentException>(() => ResponseLengthSchedules.Parse(spec, maxLength: 60));
        Assert.Contains($"'{spec}'", e.Message);
    }

    [Fact]
    public void An_unknown_format_lists_the_known_ones()
    {
        var e = Assert.Throws<ArgumentException>(() => ResponseLengthSchedules.Parse("cosine", 60));
        foreach (string format in ResponseLengthSchedules.KnownFormats) Assert.Contains(format, e.Message);
    }
}
