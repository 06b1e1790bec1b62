using System.IO.MemoryMappedFiles;
using System.Security.Cryptography;
using System.Text;
using YingHub.Moe.Core.Tokenizers;

namespace YingHub.Moe.Training.Data;

/// <summary>
/// A tokenized corpus, memory-mapped: the text is tokenized once and its ids cached in a binary file next to it
/// (uint16 when the vocabulary fits, else uint32; in the temporary directory when the corpus directory is read-only),
/// so a large corpus costs no managed arrays of ids. The cache is
/// keyed by the corpus size and write time and by the tokenizer (kind and vocabulary), and rebuilt when either changes.
/// Dispose it to unmap the file.
/// </summary>
public sealed class TokenCorpus : IDisposable
{
    private const string Magic = "YHTOKENS";
    private const int HeaderBytes = 64; // magic (8), element width (4), reserved (4), count (8), fingerprint (32), padding
    private const int ChunkChars = 1 << 20;

    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private readonly int _width;

    private TokenCorpus(string cachePath, int width, long count)
    {
        CachePath = cachePath;
        _width = width;
        Count = count;
        _file = MemoryMappedFile.CreateFromFile(cachePath, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        _view = _file.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
    }

    /// <summary>Number of tokens.</summary>
    public long Count { get; }

    /// <summary>The cache file.</summary>
    public string CachePath { get; }

    /// <summary>
    /// Opens the token cache of <paramref name="corpusPath"/> for <paramref name="tokenizer"/>, tokenizing the corpus
    /// first if there is no valid cache. Large files are tokenized in chunks of about a million characters, cut after a
    /// newline that is followed by a non-space character, so pre-tokenization never straddles a cut.
    /// </summary>
    /// <exception cref="FileNotFoundException">The corpus does not exist.</exception>
    /// <exception cref="ArgumentException">The corpus holds text the tokenizer cannot encode (the message names it).</exception>
    public static TokenCorpus Open(string corpusPath, ITextTokenizer tokenizer, string? cachePath = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(corpusPath);
        ArgumentNullException.ThrowIfNull(tokenizer);
        var info = new FileInfo(corpusPath);
        if (!info.Exists) throw new FileNotFoundException($"Corpus '{corpusPath}' does not exist.", corpusPath);
        byte[] fingerprint = Fingerprint(info, tokenizer);
        int width = tokenizer.VocabSize <= ushort.MaxValue + 1 ? 2 : 4;
        if (cachePath is null)
        {
            string name = $"{info.Name}.{tokenizer.Name}-{Convert.ToHexString(fingerprint, 0, 4).ToLowerInvariant()}.tokens";
            string beside = Path.Combine(info.DirectoryName!, name);
            string fallback = Path.Combine(Path.GetTempPath(), "yinghub-tokens", name);
            foreach (string candidate in new[] { beside, fallback })
            {
                if (ReadValidHeader(candidate, fingerprint, width) is { } cached) return new TokenCorpus(candidate, width, cached);
            }

            try
            {
                return new TokenCorpus(beside, width, Build(info.FullName, tokenizer, beside, fingerprint, width, cancellationToken));
            }
            catch (Exception ex) when (ex is UnauthorizedAccessException or IOException && ex is not FileNotFoundException)
            {
                // the corpus directory is read-only: cache in the temporary directory instead
                Directory.CreateDirectory(Path.GetDirectoryName(fallback)!);
                return new TokenCorpus(fallback, width, Build(info.FullName, tokenizer, fallback, fingerprint, width, cancellationToken));
            }
        }

        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(cachePath))!);
        long count = ReadValidHeader(cachePath, fingerprint, width) ?? Build(info.FullName, tokenizer, cachePath, fingerprint, width, cancellationToken);
        return new TokenCorpus(cachePath, width, count);
    }

    /// <summary>Token <paramref name="index"/>.</summary>
    public long this[long index] => _width == 2
        ? _view.ReadUInt16(HeaderBytes + index * 2)
        : _view.ReadUInt32(HeaderBytes + index * 4);

    /// <summary>Copies tokens [start, start + destination.Length) into <paramref name="destination"/>.</summary>
    public void Read(long start, Span<long> destination)
    {
        if (start < 0 || start + destination.Length > Count)
            throw new ArgumentOutOfRangeException(nameof(start), start, $"Tokens [{start}, {start + destination.Length}) are outside [0, {Count}).");
        for (int i = 0; i < destination.Length; i++) destination[i] = this[start + i];
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _view.Dispose();
        _file.Dispose();
    }

    private static byte[] Fingerprint(FileInfo corpus, ITextTokenizer tokenizer)
    {
        string identity = tokenizer is CharTokenizer c ? c.Vocabulary : $"{tokenizer.Name}:{tokenizer.VocabSize}";
        return SHA256.HashData(Encoding.UTF8.GetBytes($"{corpus.Length}|{corpus.LastWriteTimeUtc.Ticks}|{tokenizer.Name}|{identity}"));
    }

    private static long? ReadValidHeader(string cachePath, byte[] fingerprint, int width)
    {
        if (!File.Exists(cachePath)) return null;
        using var stream = File.OpenRead(cachePath);
        if (stream.Length < HeaderBytes) return null;
        using var reader = new BinaryReader(stream);
        if (Encoding.ASCII.GetString(reader.ReadBytes(8)) != Magic || reader.ReadInt32() != width) return null;
        reader.ReadInt32();
        long count = reader.ReadInt64();
        if (!reader.ReadBytes(32).AsSpan().SequenceEqual(fingerprint)) return null;
        return stream.Length == HeaderBytes + count * width ? count : null; // a truncated cache is rebuilt
    }

    private static long Build(string corpusPath, ITextTokenizer tokenizer, string cachePath, byte[] fingerprint, int width, CancellationToken cancellationToken)
    {
        string temp = cachePath + $".{Guid.NewGuid():N}.tmp";
        long count = 0;
        try
        {
            using (var output = new BinaryWriter(new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20)))
            {
                output.Write(new byte[HeaderBytes]);
                using var input = new StreamReader(corpusPath, Encoding.UTF8);
                var buffer = new StringBuilder();
                var chunk = new char[ChunkChars];
                int read;
                while ((read = input.Read(chunk, 0, chunk.Length)) > 0 || buffer.Length > 0)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    buffer.Append(chunk, 0, read);
                    int cut = read == 0 ? buffer.Length : SafeCut(buffer);
                    if (cut == 0) continue;
                    foreach (int id in tokenizer.Encode(buffer.ToString(0, cut)))
                    {
                        if (width == 2) output.Write((ushort)id);
                        else output.Write((uint)id);
                        count++;
                    }

                    buffer.Remove(0, cut);
                }

                output.Seek(0, SeekOrigin.Begin);
                output.Write(Encoding.ASCII.GetBytes(Magic));
                output.Write(width);
                output.Write(0);
                output.Write(count);
                output.Write(fingerprint);
                output.Flush();
            }

            File.Move(temp, cachePath, overwrite: true);
            return count;
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    /// <summary>The end of the last "newline followed by a non-space" in the buffer, or 0 when there is none yet.</summary>
    private static int SafeCut(StringBuilder buffer)
    {
        for (int i = buffer.Length - 2; i >= 0; i--)
        {
            if (buffer[i] == '\n' && !char.IsWhiteSpace(buffer[i + 1])) return i + 1;
        }

        return 0;
    }
}
