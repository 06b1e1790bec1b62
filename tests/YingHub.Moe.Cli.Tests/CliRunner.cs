using System.Reflection;
using System.Runtime.ExceptionServices;

namespace YingHub.Moe.Cli.Tests;

/// <summary>
/// Runs the real <c>yinghub</c> program in-process: its entry point (Program.cs builds the root command, reports
/// parse errors and invokes the command) with standard output and error captured. An exception that escapes the
/// program (what a user would see as a stack trace) escapes this call too. The test projects run their tests one at a
/// time, so swapping the process-wide console writers is safe.
/// </summary>
internal static class CliRunner
{
    /// <summary>What one run printed and returned.</summary>
    public sealed record Result(int ExitCode, string Out, string Err)
    {
        /// <summary>The non-empty lines of standard error.</summary>
        public string[] ErrLines => Err.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

        public override string ToString() => $"exit {ExitCode}; stdout: {Out}; stderr: {Err}";
    }

    public static Result Run(params string[] args)
    {
        MethodInfo entry = typeof(Cli).Assembly.EntryPoint ?? throw new InvalidOperationException("yinghub has no entry point.");
        TextWriter savedOut = Console.Out, savedErr = Console.Error;
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        Console.SetOut(stdout);
        Console.SetError(stderr);
        try
        {
            object? exit = entry.Invoke(null, [args]);
            return new Result((int)exit!, stdout.ToString(), stderr.ToString());
        }
        catch (TargetInvocationException ex) when (ex.InnerException is not null)
        {
            ExceptionDispatchInfo.Capture(ex.InnerException).Throw();
            throw;
        }
        finally
        {
            Console.SetOut(savedOut);
            Console.SetError(savedErr);
        }
    }

    /// <summary>Asserts a failed run: <paramref name="exitCode"/>, nothing but one line on standard error, containing each of <paramref name="fragments"/>.</summary>
    public static string AssertOneLineError(Result result, int exitCode, params string[] fragments)
    {
        Assert.True(result.ExitCode == exitCode, $"expected exit {exitCode}: {result}");
        string line = Assert.Single(result.ErrLines);
        Assert.DoesNotContain("   at ", result.Err); // no stack trace
        foreach (string fragment in fragments) Assert.Contains(fragment, line);
        return line;
    }
}
