using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace YingHub.Moe.Benchmarks;

/// <summary>
/// Load on a running <c>yinghub serve</c> (or any OpenAI-compatible server): for each number of concurrent clients,
/// every client sends streamed <c>/v1/completions</c> requests one after another until <c>--requests</c> have been
/// answered in all; reports requests per second, generated tokens per second (from the usage chunk), and the time to
/// first token (the first chunk with text, from sending the request) as median and 90th percentile. The server runs one
/// request at a time per model, so concurrency shows up as queueing in the time to first token. One JSON line.
/// <code>
/// dotnet run -c Release --project benchmarks/YingHub.Moe.Benchmarks -- serve-load --url http://127.0.0.1:18080 [--clients 1,4,16] [--requests 32] [--tokens 64] [--prompt "ROMEO:"]
/// </code>
/// </summary>
internal static class ServeLoad
{
    public static int Run(string[] args)
    {
        var a = new BenchmarkArguments(args);
        var url = new Uri(a.Get("--url", "http://127.0.0.1:18080"));
        int[] clients = a.Get("--clients", "1,4,16").Split(',').Select(int.Parse).ToArray();
        int requests = a.Int("--requests", 32), tokens = a.Int("--tokens", 64);
        string prompt = a.Get("--prompt", "ROMEO:");
        string? key = Environment.GetEnvironmentVariable("YINGHUB_API_KEY");
        using var http = new HttpClient { BaseAddress = url, Timeout = TimeSpan.FromMinutes(30) };
        if (!string.IsNullOrEmpty(key)) http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        string model = JsonDocument.Parse(http.GetStringAsync("/v1/models").GetAwaiter().GetResult()).RootElement.GetProperty("data")[0].GetProperty("id").GetString()!;

        // one warm-up request: the first forward's one-time costs are not the load's
        One(http, prompt, tokens, seed: 0).GetAwaiter().GetResult();
        var rows = new List<object>();
        foreach (int c in clients)
        {
            int next = 0;
            var results = new List<(double Ttft, double Total, int Tokens)>();
            var clock = Stopwatch.StartNew();
            var workers = Enumerable.Range(0, c).Select(async _ =>
            {
                while (Interlocked.Increment(ref next) is var i && i <= requests)
                {
                    var r = await One(http, prompt, tokens, seed: i);
                    lock (results) results.Add(r);
                }
            }).ToArray();
            Task.WaitAll(workers);
            double seconds = clock.Elapsed.TotalSeconds;
            var ttft = results.Select(r => r.Ttft).Order().ToArray();
            rows.Add(new
            {
                clients = c, requests = results.Count, seconds = Math.Round(seconds, 2),
                requests_per_s = Math.Round(results.Count / seconds, 2),
                tokens_per_s = Math.Round(results.Sum(r => r.Tokens) / seconds, 1),
                ttft_ms_median = Math.Round(Statistics.Median(ttft), 1),
                ttft_ms_p90 = Math.Round(ttft[(int)Math.Ceiling(0.9 * ttft.Length) - 1], 1),
                request_ms_median = Math.Round(Statistics.Median(results.Select(r => r.Total)), 1),
            });
        }

        Console.WriteLine(JsonSerializer.Serialize(new { mode = "serve-load", url = url.ToString(), model, prompt, tokens, cpu = TrainingThroughput.CpuName(), runs = rows }));
        return 0;
    }

    /// <summary>One streamed completion: milliseconds to the first text, to the end, and the generated tokens.</summary>
    private static async Task<(double Ttft, double Total, int Tokens)> One(HttpClient http, string prompt, int tokens, int seed)
    {
        string body = JsonSerializer.Serialize(new
        {
            prompt, max_tokens = tokens, temperature = 0.8, seed, stream = true, stream_options = new { include_usage = true },
        });
        var clock = Stopwatch.StartNew();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        double ttft = double.NaN;
        int generated = 0;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
            string data = line["data: ".Length..];
            if (data == "[DONE]") break;
            using var chunk = JsonDocument.Parse(data);
            var root = chunk.RootElement;
            if (double.IsNaN(ttft) && root.GetProperty("choices") is { ValueKind: JsonValueKind.Array } choices && choices.GetArrayLength() > 0
                && choices[0].GetProperty("text").GetString() is { Length: > 0 })
                ttft = clock.Elapsed.TotalMilliseconds;
            if (root.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object)
                generated = usage.GetProperty("completion_tokens").GetInt32();
        }

        return (ttft, clock.Elapsed.TotalMilliseconds, generated);
    }
}
