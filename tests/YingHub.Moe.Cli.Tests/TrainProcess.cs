using System.Diagnostics;
using System.Runtime.InteropServices;

namespace YingHub.Moe.Cli.Tests;

/// <summary>Runs the real <c>yinghub</c> CLI (the build beside the tests) as a child process, on a small corpus in a temporary directory.</summary>
internal sealed class TrainProcess : IDisposable
{
    private static readonly string Cli = Path.Combine(AppContext.BaseDirectory, "yinghub.dll");

    public TrainProcess()
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("yinghub-cli-train-").FullName;
        var random = new Random(1);
        string[] words = "the king and queen of a far land went to see the sea and sang a song".Split(' ');
        File.WriteAllText(Corpus, string.Join(' ', Enumerable.Range(0, 6000).Select(_ => words[random.Next(words.Length)])));
    }

    /// <summary>The working directory of every run.</summary>
    public string Directory { get; }

    /// <summary>A text of 18 distinct characters (17 letters and the space).</summary>
    public string Corpus => Path.Combine(Directory, "text.txt");

    /// <summary><c>yinghub train</c> of the tiny preset on <see cref="Corpus"/> with small blocks and batches, then <paramref name="more"/>.</summary>
    public static string[] Train(string output, params string[] more) =>
        ["train", "--data", "text.txt", "--preset", "tiny", "--block", "16", "--batch", "2", "--out", output, .. more];

    /// <summary>Starts the CLI with <paramref name="arguments"/>; standard output and error are collected.</summary>
    public Started Start(params string[] arguments)
    {
        var info = new ProcessStartInfo("dotnet") { WorkingDirectory = Directory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(Cli);
        foreach (string a in arguments) info.ArgumentList.Add(a);
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        var process = Process.Start(info)!;
        var started = new Started(process);
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (started.Output) started.Output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (started.Error) started.Error.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return started;
    }

    /// <summary>Runs the CLI to its end.</summary>
    public (int ExitCode, string Output, string Error) Run(params string[] arguments)
    {
        using var started = Start(arguments);
        started.Process.WaitForExit();
        return (started.Process.ExitCode, started.Output.ToString(), started.Error.ToString());
    }

    public void Dispose() => System.IO.Directory.Delete(Directory, recursive: true);

    /// <summary>A running CLI process.</summary>
    internal sealed class Started(Process process) : IDisposable
    {
        public Process Process { get; } = process;
        public System.Text.StringBuilder Output { get; } = new();
        public System.Text.StringBuilder Error { get; } = new();

        /// <summary>Sends SIGTERM, as <c>docker stop</c> and systemd do.</summary>
        public void Terminate()
        {
            if (SendSignal(Process.Id, 15) != 0) throw new InvalidOperationException($"kill({Process.Id}, SIGTERM) failed: errno {Marshal.GetLastPInvokeError()}.");
        }

        /// <summary>SIGKILL: no handler runs, nothing is flushed.</summary>
        public void KillHard()
        {
            Process.Kill();
            Process.WaitForExit();
        }

        public void Dispose()
        {
            if (!Process.HasExited) KillHard();
            Process.WaitForExit(); // drains the output events
            Process.Dispose();
        }

        [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
        private static extern int SendSignal(int pid, int signal);
    }
}

/// <summary>A test that needs POSIX signals (Linux, macOS).</summary>
public sealed class UnixFactAttribute : FactAttribute
{
    public UnixFactAttribute()
    {
        if (OperatingSystem.IsWindows()) Skip = "Needs POSIX signals (SIGTERM, SIGKILL), which Windows lacks.";
    }
}
