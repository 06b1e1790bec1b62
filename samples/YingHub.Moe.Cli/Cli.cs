using YingHub.Moe.Core.Runtime;

namespace YingHub.Moe.Cli;

/// <summary>A failure the user can act on: printed as one line on standard error, with an exit code, never a stack trace.</summary>
internal sealed class CliException(string message, int exitCode = 1) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

/// <summary>What every command shares: running with one-line errors, libtorch start-up, and reading the input text.</summary>
internal static class Cli
{
    /// <summary>Runs a command body; a <see cref="CliException"/> (or bad input from the library) becomes one line and an exit code.</summary>
    public static int Run(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (CliException ex)
        {
            Console.Error.WriteLine(ex.Message);
            return ex.ExitCode;
        }
        catch (Exception ex) when (ex is ArgumentException or IOException or InvalidDataException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine(ex.Message);
            return 1;
        }
    }

    /// <summary>Initialises libtorch, or fails with the real cause (see <see cref="TorchRuntime"/>).</summary>
    public static void RequireTorch()
    {
        try
        {
            TorchRuntime.EnsureInitialized();
        }
        catch (InvalidOperationException ex)
        {
            throw new CliException(ex.Message);
        }
    }

    /// <summary>The text of exactly one of <c>--text</c> and <c>--file</c>.</summary>
    public static string ReadInput(string? text, string? file)
    {
        if ((text is null) == (file is null)) throw new CliException("Give exactly one of --text TEXT or --file FILE.", 2);
        if (file is not null && !File.Exists(file)) throw new CliException($"File '{file}' does not exist.");
        return text ?? File.ReadAllText(file!);
    }
}
