using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace YingHub.Moe.Cli.Tests;

public sealed class TinyShakespeareTests : IDisposable
{
    private static readonly byte[] Right = Encoding.UTF8.GetBytes("First Citizen:\nBefore we proceed any further, hear me speak.\n");
    private static readonly string RightSha = Convert.ToHexStringLower(SHA256.HashData(Right));
    private readonly string _dir = Directory.CreateTempSubdirectory("yinghub-tinyshakespeare-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static int FreePort()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return port;
    }

    /// <summary>An HTTP server on localhost answering every request with <paramref name="body"/> and <paramref name="status"/>.</summary>
    private sealed class Stub : IDisposable
    {
        private readonly HttpListener _listener = new();

        public Stub(byte[] body, HttpStatusCode status = HttpStatusCode.OK)
        {
            int port = FreePort();
            Url = new Uri($"http://localhost:{port}/input.txt");
            _listener.Prefixes.Add($"http://localhost:{port}/");
            _listener.Start();
            _ = Task.Run(async () =>
            {
                while (_listener.IsListening)
                {
                    HttpListenerContext context;
                    try
                    {
                        context = await _listener.GetContextAsync();
                    }
                    catch (Exception)
                    {
                        return;
                    }

                    Requests++;
                    context.Response.StatusCode = (int)status;
                    await context.Response.OutputStream.WriteAsync(body);
                    context.Response.Close();
                }
            });
        }

        public Uri Url { get; }

        public int Requests { get; private set; }

        public void Dispose() => _listener.Close();
    }

    private string[] Leftovers() => Directory.GetFiles(_dir, "*.part", SearchOption.AllDirectories);

    [Fact]
    public void The_right_bytes_are_moved_into_place()
    {
        using var stub = new Stub(Right);
        using var client = new HttpClient();
        string target = Path.Combine(_dir, "cache", TinyShakespeare.FileName);
        TinyShakespeare.DownloadVerified(client, stub.Url, target, Right.Length, RightSha);
        Assert.Equal(Right, File.ReadAllBytes(target));
        Assert.Empty(Leftovers());
    }

    [Fact]
    public void Wrong_bytes_of_the_right_size_fail_the_hash_and_leave_nothing()
    {
        byte[] wrong = (byte[])Right.Clone();
        wrong[3] ^= 1;
        using var stub = new Stub(wrong);
        using var client = new HttpClient();
        string target = Path.Combine(_dir, TinyShakespeare.FileName);
        var ex = Assert.Throws<InvalidDataException>(() => TinyShakespeare.DownloadVerified(client, stub.Url, target, Right.Length, RightSha));
        Assert.Contains("SHA-256", ex.Message);
        Assert.Contains(RightSha, ex.Message);
        Assert.False(File.Exists(target));
        Assert.Empty(Leftovers());
    }

    [Theory]
    [InlineData(-5)]
    [InlineData(7)]
    public void A_download_of_the_wrong_size_fails_and_leaves_nothing(int delta)
    {
        byte[] body = delta < 0 ? Right[..^(-delta)] : [.. Right, .. new byte[delta]];
        using var stub = new Stub(body);
        using var client = new HttpClient();
        string target = Path.Combine(_dir, TinyShakespeare.FileName);
        var ex = Assert.Throws<InvalidDataException>(() => TinyShakespeare.DownloadVerified(client, stub.Url, target, Right.Length, RightSha));
        Assert.Contains("bytes", ex.Message);
        Assert.False(File.Exists(target));
        Assert.Empty(Leftovers());
    }

    [Fact]
    public void An_existing_good_file_is_replaced_only_by_a_verified_download()
    {
        string target = Path.Combine(_dir, TinyShakespeare.FileName);
        File.WriteAllText(target, "old");
        using var stub = new Stub([1, 2, 3]);
        using var client = new HttpClient();
        Assert.Throws<InvalidDataException>(() => TinyShakespeare.DownloadVerified(client, stub.Url, target, Right.Length, RightSha));
        Assert.Equal("old", File.ReadAllText(target));
    }

    [Fact]
    public void Fetch_uses_the_cache_then_downloads_and_fails_offline_naming_both_ways_to_supply_the_file()
    {
        string cache = Path.Combine(_dir, "cache");
        using (var stub = new Stub(Right))
        {
            string path = TinyShakespeare.Fetch(cache, stub.Url, Right.Length, RightSha, handler: null, log: null);
            Assert.Equal(Path.Combine(cache, TinyShakespeare.FileName), path);
            Assert.Equal(1, stub.Requests);
            Assert.Equal(path, TinyShakespeare.Fetch(cache, stub.Url, Right.Length, RightSha, handler: null, log: null));
            Assert.Equal(1, stub.Requests); // the cached file is used
        }

        var offline = new Uri($"http://localhost:{FreePort()}/input.txt"); // nothing listens there
        var ex = Assert.Throws<CliException>(() => TinyShakespeare.Fetch(Path.Combine(_dir, "other"), offline, Right.Length, RightSha, null, null));
        Assert.Contains("YINGHUB_DATA_DIR", ex.Message);
        Assert.Contains("--data FILE", ex.Message);
        Assert.DoesNotContain('\n', ex.Message);

        using var notFound = new Stub(Right, HttpStatusCode.NotFound);
        var missing = Assert.Throws<CliException>(() => TinyShakespeare.Fetch(Path.Combine(_dir, "third"), notFound.Url, Right.Length, RightSha, null, null));
        Assert.Contains("404", missing.Message);
        using var corrupt = new Stub([.. Right, 0]);
        var bad = Assert.Throws<CliException>(() => TinyShakespeare.Fetch(Path.Combine(_dir, "fourth"), corrupt.Url, Right.Length, RightSha, null, null));
        Assert.Contains("larger than the expected", bad.Message);
        Assert.False(Directory.Exists(Path.Combine(_dir, "fourth")) && File.Exists(Path.Combine(_dir, "fourth", TinyShakespeare.FileName)));
    }

    [Fact]
    public void The_cache_is_under_xdg_cache_home_or_the_home_directory()
    {
        Assert.Equal(Path.Combine("/xdg", "yinghub"), TinyShakespeare.CacheDirectory(n => n == "XDG_CACHE_HOME" ? "/xdg" : "/home/u"));
        Assert.Equal(Path.Combine("/home/u", ".cache", "yinghub"), TinyShakespeare.CacheDirectory(n => n == "HOME" ? "/home/u" : null));
        Assert.Equal(Path.Combine("/home/u", ".cache", "yinghub"), TinyShakespeare.CacheDirectory(n => n == "HOME" ? "/home/u" : "relative"));
    }

    [YingHub.Moe.Testing.SharedDataFact(TinyShakespeare.FileName)] // skipped, with the reason, without the shared data
    public void The_pinned_hash_and_size_are_those_of_the_shared_copy()
    {
        string shared = YingHub.Moe.Testing.SharedData.Require(TinyShakespeare.FileName);
        Assert.Equal(TinyShakespeare.Size, new FileInfo(shared).Length);
        Assert.Equal(TinyShakespeare.Sha256, Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(shared))));
    }
}
