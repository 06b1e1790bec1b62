using YingHub.Moe.Training;

namespace YingHub.Moe.Cli.Tests;

public class CliTests
{
    [Fact]
    public void Library_errors_become_one_line_without_the_parameter_suffix()
    {
        Assert.Equal("bad value", Cli.MessageOf(new ArgumentException("bad value", "x")));
        Assert.Equal("plain", Cli.MessageOf(new IOException("plain")));
        Assert.Equal("Must be one of: 'a' 'b'", Cli.OneLine("Must be one of:\n\t'a'\n\t'b'\n"));
    }

    [Fact]
    public void Run_turns_user_errors_into_exit_codes()
    {
        var saved = Console.Error;
        var error = new StringWriter();
        Console.SetError(error);
        try
        {
            Assert.Equal(2, Cli.Run(() => throw new CliException("no such thing", 2)));
            Assert.Equal(1, Cli.Run(() => throw new ArgumentException("bad", "p")));
            Assert.Equal(0, Cli.Run(() => 0));
        }
        finally
        {
            Console.SetError(saved);
        }

        Assert.Equal($"no such thing{Environment.NewLine}bad{Environment.NewLine}", error.ToString());
    }

    [Fact]
    public void Progress_lines_show_evaluations_in_plain_mode_and_every_point_on_the_bar()
    {
        var log = new TrainingProgress(20, 2.5, null, 1e-3, 1234);
        var eval = new TrainingProgress(100, 2.25, 2.375, 5e-4, 1500);
        Assert.Null(TrainingProgressView.PlainLine(log, 100));
        Assert.Equal($"step    100/100: train loss {2.25:F3}, val loss {2.375:F3}, lr {5e-4:G3}, {1500:N0} tokens/s", TrainingProgressView.PlainLine(eval, 100));
        Assert.Equal($"step 20/100  loss {2.5:F3}  lr {1e-3:G3}  {1234:N0} tok/s", TrainingProgressView.Describe(log, 100));
        Assert.Contains("loss 2", TrainingProgressView.Describe(log, 100));
        var metrics = new Dictionary<string, double> { ["ms_per_step"] = 151.6, ["mfu"] = 0.314 };
        Assert.Equal($"step    100/100: train loss {2.25:F3}, val loss {2.375:F3}, lr {5e-4:G3}, {1500:N0} tokens/s, {152:F0} ms/step, MFU {0.31:P0}",
            TrainingProgressView.PlainLine(eval, 100, metrics));
        Assert.EndsWith($"  {152:F0} ms/step  MFU {0.31:P0}", TrainingProgressView.Describe(log with { Metrics = metrics }, 100));
        Assert.False(TrainingProgressView.UseBar(json: true));
    }

    [Fact]
    public void Decode_speed_keeps_the_first_token_apart_from_the_steady_rate()
    {
        var speed = new DecodeSpeed();
        Assert.Null(speed.SteadyTokensPerSecond);
        speed.Token(TimeSpan.FromMilliseconds(100));
        Assert.Null(speed.SteadyTokensPerSecond); // one token has no rate after it
        speed.Token(TimeSpan.FromMilliseconds(150));
        speed.Token(TimeSpan.FromMilliseconds(200));
        Assert.Equal((3, 100.0, 200.0), (speed.Tokens, speed.FirstToken.TotalMilliseconds, speed.Total.TotalMilliseconds));
        Assert.Equal(20.0, speed.SteadyTokensPerSecond!.Value, 9);  // 2 tokens in the 0.1 s after the first
        Assert.Equal(15.0, speed.TokensPerSecond, 9);               // 3 tokens in 0.2 s
    }
}
