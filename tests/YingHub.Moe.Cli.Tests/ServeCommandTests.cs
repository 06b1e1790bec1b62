using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace YingHub.Moe.Cli.Tests;

/// <summary>
/// <c>yinghub serve</c> as a user runs it: a real process on a free port that answers, and stops cleanly on SIGTERM;
/// bad flags are one-line errors before anything is loaded.
/// </summary>
public sealed partial class ServeCommandTests(TinyCheckpoint checkpoint) : IClassFixture<TinyCheckpoint>, IDisposable
{
    private readonly TrainProcess _cli = new();

    public void Dispose() => _cli.Dispose();

    [GeneratedRegex(@"listening on (http://\S+)")]
    private static partial Regex Listening();

    [UnixFact]
    public async Task The_real_program_serves_a_checkpoint_and_stops_on_sigterm()
    {
        using var server = _cli.Start("serve", "--checkpoint", checkpoint.Directory, "--port", "0", "--api-key", "k");
        string address = "";
        while (!server.Process.HasExited)
        {
            lock (server.Output)
            {
                if (Listening().Match(server.Output.ToString()) is { Success: true } match)
                {
                    address = match.Groups[1].Value;
                    break;
                }
            }

            Thread.Sleep(50);
        }

        Assert.False(server.Process.HasExited, $"the server ended: {server.Error}");
        using var http = new HttpClient { BaseAddress = new Uri(address) };
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "k");
        using (var health = await http.GetAsync("/health")) Assert.True(health.IsSuccessStatusCode);
        using (var response = await http.PostAsJsonAsync("/v1/completions", new { prompt = "the ", max_tokens = 5, temperature = 0 }))
        {
            Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Equal(5, body.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
            Assert.Equal("checkpoint", body.RootElement.GetProperty("model").GetString()); // the directory's name
        }

        server.Terminate();
        server.Process.WaitForExit();
        Assert.True(server.Process.ExitCode == 0, $"exit {server.Process.ExitCode}: {server.Error}");
        Assert.Contains("yinghub serve: stopped.", server.Output.ToString());
    }

    [Fact]
    public void Bad_flags_are_one_line_errors()
    {
        CliRunner.AssertOneLineError(CliRunner.Run("serve", "--checkpoint", checkpoint.Directory, "--port", "70000"), 2, "--port 70000 is invalid");
        CliRunner.AssertOneLineError(CliRunner.Run("serve", "--checkpoint", checkpoint.Directory, "--host", "example"), 2, "--host 'example' is invalid");
        CliRunner.AssertOneLineError(CliRunner.Run("serve", "--checkpoint", checkpoint.Directory, "--max-tokens", "0"), 2, "--max-tokens");
        CliRunner.AssertOneLineError(CliRunner.Run("serve", "--checkpoint", Path.Combine(checkpoint.Root, "absent")), 1, "does not exist");
    }
}
