using System.Net;
using System.Security.Cryptography;

namespace YingHub.Moe.Cli;

/// <summary>
/// Finds Tiny Shakespeare for <c>--data tinyshakespeare</c>: <c>$YINGHUB_DATA_DIR</c>, then <c>../shared/data</c>
/// beside the repository, then the user cache (<c>$XDG_CACHE_HOME/yinghub</c> or <c>~/.cache/yinghub</c>), else
/// downloads char-rnn's canonical file into that cache, checking its size and SHA-256 before moving it into place.
/// </summary>
internal static class TinyShakespeare
{
    public const string FileName = "tinyshakespeare.txt";

    /// <summary>Size of the canonical file in bytes.</summary>
    public const long Size = 1_115_394;

    /// <summary>SHA-256 of the canonical file (hex, lower case).</summary>
    public const string Sha256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed";

    public static readonly Uri CanonicalUrl = new("https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt");

    /// <summary>The path of Tiny Shakespeare, downloading it into the cache if it is nowhere else.</summary>
    public static string Locate() =>
        DataFiles.TryLocate(FileName) ?? Fetch(CacheDirectory(Environment.GetEnvironmentVariable), CanonicalUrl, Size, Sha256, handler: null, Console.Error);

    /// <summary><c>$XDG_CACHE_HOME/yinghub</c>, or <c>~/.cache/yinghub</c>.</summary>
    public static string CacheDirectory(Func<string, string?> environment)
    {
        string? xdg = environment("XDG_CACHE_HOME");
        if (!string.IsNullOrEmpty(xdg) && Path.IsPathRooted(xdg)) return Path.Combine(xdg, "yinghub");
        string home = environment("HOME") is { Length: > 0 } h ? h : Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        return Path.Combine(home, ".cache", "yinghub");
    }

    /// <summary>
    /// The cached file in <paramref name="cacheDirectory"/>, or the file downloaded from <paramref name="url"/> into it;
    /// any failure is one <see cref="CliException"/> naming both ways to supply the file.
    /// </summary>
    public static string Fetch(string cacheDirectory, Uri url, long size, string sha256, HttpMessageHandler? handler, TextWriter? log)
    {
        string target = Path.Combine(cacheDirectory, FileName);
        if (File.Exists(target)) return target; // only verified downloads are ever moved there
        const string Supply = "Set YINGHUB_DATA_DIR to a directory holding tinyshakespeare.txt, or pass --data FILE.";
        try
        {
            log?.WriteLine($"{FileName} not found locally; downloading {url} into {cacheDirectory} ...");
            using var client = handler is null
                ? new HttpClient(new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(15) }) { Timeout = TimeSpan.FromMinutes(5) }
                : new HttpClient(handler, disposeHandler: false) { Timeout = TimeSpan.FromSeconds(30) };
            DownloadVerified(client, url, target, size, sha256);
            return target;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException or InvalidDataException or UnauthorizedAccessException)
        {
            throw new CliException($"{FileName} was not found locally and downloading it from {url} failed ({Cli.OneLine(ex.Message).TrimEnd('.')}). {Supply}");
        }
    }

    /// <summary>
    /// Downloads <paramref name="url"/> to a temporary file beside <paramref name="destination"/>, checks its size and
    /// SHA-256, and only then moves it into place (an atomic rename); a wrong file is deleted and never seen there.
    /// </summary>
    /// <exception cref="InvalidDataException">The size or SHA-256 differs (the message gives both values).</exception>
    /// <exception cref="HttpRequestException">The server answered with an error or could not be reached.</exception>
    public static void DownloadVerified(HttpClient client, Uri url, string destination, long size, string sha256)
    {
        ArgumentNullException.ThrowIfNull(client);
        string directory = Path.GetDirectoryName(Path.GetFullPath(destination))!;
        Directory.CreateDirectory(directory);
        string partial = Path.Combine(directory, $".{Path.GetFileName(destination)}.{Guid.NewGuid():N}.part");
        try
        {
            using (var response = client.Send(new HttpRequestMessage(HttpMethod.Get, url), HttpCompletionOption.ResponseHeadersRead))
            {
                if (response.StatusCode != HttpStatusCode.OK)
                    throw new HttpRequestException($"the server answered {(int)response.StatusCode} {response.ReasonPhrase}.", null, response.StatusCode);
                using var body = response.Content.ReadAsStream();
                using var file = new FileStream(partial, FileMode.CreateNew, FileAccess.Write);
                using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                var buffer = new byte[81920];
                long total = 0;
                for (int n; (n = body.Read(buffer)) > 0;)
                {
                    total += n;
                    if (total > size) throw new InvalidDataException($"the download is larger than the expected {size:N0} bytes.");
                    hash.AppendData(buffer, 0, n);
                    file.Write(buffer, 0, n);
                }

                if (total != size) throw new InvalidDataException($"the download has {total:N0} bytes; expected {size:N0}.");
                string actual = Convert.ToHexStringLower(hash.GetHashAndReset());
                if (!string.Equals(actual, sha256, StringComparison.OrdinalIgnoreCase))
                    throw new InvalidDataException($"the download's SHA-256 is {actual}; expected {sha256}.");
            }

            File.Move(partial, destination, overwrite: true);
        }
        finally
        {
            if (File.Exists(partial)) File.Delete(partial);
        }
    }
}
