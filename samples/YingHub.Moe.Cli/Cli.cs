using System.CommandLine;
using System.Runtime.InteropServices;
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
            Console.Error.WriteLine(MessageOf(ex));
            return 1;
        }
    }

    /// <summary>An exception's message without the <c>(Parameter 'name')</c> suffix of an <see cref="ArgumentException"/>.</summary>
    public static string MessageOf(Exception ex)
    {
        string message = ex.Message;
        if (ex is ArgumentException { ParamName: { } name })
        {
            string suffix = $" (Parameter '{name}')";
            if (message.EndsWith(suffix, StringComparison.Ordinal)) message = message[..^suffix.Length];
        }

        return message;
    }

    /// <summary>A message on one line: line breaks and the indentation after them become single spaces.</summary>
    public static string OneLine(string message) => System.Text.RegularExpressions.Regex.Replace(message.Trim(), @"\s*\n\s*", " ");

    /// <summary>An option of an optional integer whose parse error names the option and the bad value (not <c>Nullable`1</c>).</summary>
    public static Option<int?> OptionalInt(string name, string description) => new(name)
    {
        Description = description,
        CustomParser = result =>
        {
            string token = result.Tokens.Count == 1 ? result.Tokens[0].Value : string.Join(' ', result.Tokens.Select(t => t.Value));
            if (int.TryParse(token, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out int value)) return value;
            result.AddError($"{name} must be an integer; got '{token}'.");
            return null;
        },
    };

    /// <summary>An option of an optional 64-bit integer with a readable parse error.</summary>
    public static Option<long?> OptionalLong(string name, string description) => new(name)
    {
        Description = description,
        CustomParser = result =>
        {
            string token = string.Join(' ', result.Tokens.Select(t => t.Value));
            if (long.TryParse(token, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out long value)) return value;
            result.AddError($"{name} must be an integer; got '{token}'.");
            return null;
        },
    };

    /// <summary>An option of an optional number with a readable parse error.</summary>
    public static Option<double?> OptionalDouble(string name, string description) => new(name)
    {
        Description = description,
        CustomParser = result =>
        {
            string token = string.Join(' ', result.Tokens.Select(t => t.Value));
            if (double.TryParse(token, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double value)) return value;
            result.AddError($"{name} must be a number; got '{token}'.");
            return null;
        },
    };

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

/// <summary>
/// Turns SIGINT (Ctrl-C) and SIGTERM (docker stop, systemd) into a cancellation, so a command can finish its step,
/// save and say so instead of dying on the spot; a second signal terminates at once. Exit codes follow the shell's
/// 128 + signal convention (130, 143).
/// </summary>
internal sealed class StopSignals : IDisposable
{
    private readonly CancellationTokenSource _cancel = new();
    private readonly PosixSignalRegistration[] _registrations;

    public StopSignals()
    {
        _registrations = [PosixSignalRegistration.Create(PosixSignal.SIGINT, Handle), PosixSignalRegistration.Create(PosixSignal.SIGTERM, Handle)];
    }

    /// <summary>Cancelled by the first signal.</summary>
    public CancellationToken Token => _cancel.Token;

    /// <summary>The first signal received, if any.</summary>
    public PosixSignal? Received { get; private set; }

    /// <summary>128 + the signal's number.</summary>
    public static int ExitCode(PosixSignal signal) => signal switch
    {
        PosixSignal.SIGINT => 130,
        PosixSignal.SIGTERM => 143,
        _ => 1,
    };

    private void Handle(PosixSignalContext context)
    {
        if (Received is not null) return; // the second one: let it terminate the process
        context.Cancel = true;
        Received = context.Signal;
        Console.Error.WriteLine($"{context.Signal}: finishing the current step and saving (send it again to stop at once).");
        _cancel.Cancel();
    }

    public void Dispose()
    {
        foreach (var r in _registrations) r.Dispose();
        _cancel.Dispose();
    }
}
