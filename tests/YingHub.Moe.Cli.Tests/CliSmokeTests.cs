namespace YingHub.Moe.Cli.Tests;

/// <summary>
/// Every command of <c>yinghub</c> through the real root command (<see cref="CliRunner"/>): the main path, and the
/// error exits as one line on standard error with the documented exit code (1 for a failure, 2 for bad usage).
/// </summary>
public sealed class CliSmokeTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("yinghub-cli").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string WriteFile(string name, string text)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    /// <summary>A small lexicon in the CMU format, enough for a couplet.</summary>
    private string Lexicon() => WriteFile("small.dict", string.Join('\n',
        "shall SH AE1 L", "i AY1", "compare K AH0 M P EH1 R", "thee DH IY1", "to T UW1", "a AH0", "summer S AH1 M ER0",
        "s Z", "day D EY1", "thou DH AW1", "art AA1 R T", "more M AO1 R", "lovely L AH1 V L IY0", "and AH0 N D",
        "temperate T EH1 M P ER0 AH0 T", "play P L EY1"));

    [Fact]
    public void Score_prints_the_reward_its_components_and_the_lines()
    {
        var result = CliRunner.Run("score", "--lexicon", Lexicon(), "--text", "Shall I compare thee to a summer's day\nThou art more lovely and more play", "--json");
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.StartsWith("total ", result.Out);
        Assert.Contains("rhyme scheme: AA", result.Out);
        Assert.Contains("\"rhyme_scheme\":\"AA\"", result.Out);
        Assert.Equal("", result.Err);
    }

    [Fact]
    public void Score_with_a_malformed_lexicon_names_the_file_the_line_number_and_the_line()
    {
        string path = WriteFile("broken.dict", "day D EY1\nnight N AY1 TT\n");
        var result = CliRunner.Run("score", "--lexicon", path, "--text", "Shall I compare thee");
        CliRunner.AssertOneLineError(result, 1, path, "line 2", "unknown phoneme 'TT'", "\"night N AY1 TT\"");
    }

    [Fact]
    public void Score_usage_errors_exit_2()
    {
        CliRunner.AssertOneLineError(CliRunner.Run("score", "--lexicon", Lexicon()), 2, "Give exactly one of --text TEXT or --file FILE.");
        CliRunner.AssertOneLineError(CliRunner.Run("score", "--lexicon", Lexicon(), "--text", "a", "--reward", "nope"), 2, "--reward must be 'shakespeare' or an existing JSON file; got 'nope'.");
        CliRunner.AssertOneLineError(CliRunner.Run("score", "--lexicon", Path.Combine(_dir, "absent.dict"), "--text", "a"), 1, "absent.dict' does not exist");
        CliRunner.AssertOneLineError(CliRunner.Run("score", "--no-such-flag"), 2, "--no-such-flag", "yinghub score --help");
    }
}
