using System.Security.Cryptography;
using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Checkpoints;

/// <summary>
/// Reads and writes the <a href="https://github.com/huggingface/safetensors">safetensors</a> format, so weights move
/// to and from the Python ecosystem: an 8-byte little-endian header length N, N bytes of UTF-8 JSON
/// (<c>{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}</c>, padded with
/// spaces to a multiple of 8), then the raw little-endian tensor bytes.
/// </summary>
public static class Safetensors
{
    private const string MetadataKey = "__metadata__";
    private const long MaxHeaderBytes = 100L * 1024 * 1024;

    private static readonly (string Code, ScalarType Type, int Size)[] DTypes =
    [
        ("F64", ScalarType.Float64, 8), ("F32", ScalarType.Float32, 4), ("F16", ScalarType.Float16, 2), ("BF16", ScalarType.BFloat16, 2),
        ("I64", ScalarType.Int64, 8), ("I32", ScalarType.Int32, 4), ("I16", ScalarType.Int16, 2), ("I8", ScalarType.Int8, 1),
        ("U8", ScalarType.Byte, 1), ("BOOL", ScalarType.Bool, 1),
    ];

    /// <summary>
    /// Writes <paramref name="tensors"/> (any device, any layout) to <paramref name="path"/> atomically: a temporary
    /// file in the same directory, flushed to disk, then renamed over the target. Keys are written sorted, so the
    /// same tensors give the same bytes.
    /// </summary>
    /// <exception cref="ArgumentException">A tensor's dtype has no safetensors code, or a name is empty or reserved.</exception>
    public static void Write(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(tensors);
        var header = new JsonObject();
        if (metadata is { Count: > 0 })
            header[MetadataKey] = new JsonObject(metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value)));
        var names = tensors.Keys.OrderBy(k => k, StringComparer.Ordinal).ToArray();
        long offset = 0;
        foreach (string name in names)
        {
            if (string.IsNullOrEmpty(name) || name == MetadataKey) throw new ArgumentException($"Tensor name '{name}' is empty or reserved.", nameof(tensors));
            var t = tensors[name];
            string code = DTypes.FirstOrDefault(d => d.Type == t.dtype).Code
                ?? throw new ArgumentException($"Tensor '{name}' has dtype {t.dtype}, which safetensors cannot store.", nameof(tensors));
            long bytes = t.numel() * t.ElementSize;
            header[name] = new JsonObject
            {
                ["dtype"] = code,
                ["shape"] = new JsonArray(t.shape.Select(s => (JsonNode?)s).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes),
            };
            offset += bytes;
        }

        byte[] json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (json.Length + 7) / 8 * 8;
        string directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(directory);
        string temp = Path.Combine(directory, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                Span<byte> length = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)padded);
                stream.Write(length);
                stream.Write(json);
                for (int i = json.Length; i < padded; i++) stream.WriteByte((byte)' ');
                foreach (string name in names)
                {
                    using var scope = torch.NewDisposeScope();
                    var cpu = tensors[name].detach().cpu().contiguous();
                    if (cpu.numel() > 0) stream.Write(cpu.bytes);
                }

                stream.Flush(flushToDisk: true);
            }

            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    /// <summary>Reads only the header (names, dtypes, shapes, offsets, metadata), validating it against the file size.</summary>
    /// <exception cref="InvalidDataException">The file is truncated or its header is malformed; the message names the file and the tensor.</exception>
    public static SafetensorsHeader ReadHeader(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var stream = File.OpenRead(path);
        return ReadHeader(stream, path);
    }

    /// <summary>Reads every tensor onto <paramref name="device"/> (CPU when null). The caller owns the tensors.</summary>
    /// <exception cref="InvalidDataException">The file is truncated or malformed; the message names the file and the tensor.</exception>
    public static Dictionary<string, Tensor> Read(string path, Device? device = null) => Read(path, out _, device);

    /// <summary>Reads every tensor and the metadata. The caller owns the tensors.</summary>
    public static Dictionary<string, Tensor> Read(string path, out IReadOnlyDictionary<string, string> metadata, Device? device = null) =>
        Read(path, out metadata, device, hash: null);

    /// <summary>
    /// Reads every tensor and the metadata, feeding every byte of the file to <paramref name="hash"/> on the way (the
    /// header check makes the tensors cover the data section contiguously, so the reads are the whole file in order):
    /// a checksum costs no second read. The caller owns the tensors.
    /// </summary>
    public static Dictionary<string, Tensor> Read(string path, out IReadOnlyDictionary<string, string> metadata, Device? device, IncrementalHash? hash)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        var header = ReadHeader(stream, path);
        metadata = header.Metadata;
        if (hash is not null)
        {
            var head = new byte[header.DataStart]; // the length prefix and the JSON header, read again (they are small)
            stream.Position = 0;
            stream.ReadExactly(head);
            hash.AppendData(head);
        }

        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var entry in header.Entries)
            {
                var t = torch.empty(entry.Shape, dtype: entry.DType);
                result.Add(entry.Name, t);
                if (entry.End > entry.Begin)
                {
                    stream.Position = header.DataStart + entry.Begin;
                    stream.ReadExactly(t.bytes);
                    hash?.AppendData(t.bytes);
                }

                if (device is not null && device.type != DeviceType.CPU)
                {
                    result[entry.Name] = t.to(device);
                    t.Dispose();
                }
            }
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }

        return result;
    }

    private static SafetensorsHeader ReadHeader(Stream stream, string path)
    {
        long fileLength = stream.Length;
        if (fileLength < 8) throw Bad(path, $"the file has {fileLength} bytes, fewer than the 8-byte header length");
        Span<byte> lengthBytes = stackalloc byte[8];
        stream.ReadExactly(lengthBytes);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (headerLength > (ulong)Math.Min(MaxHeaderBytes, fileLength - 8))
            throw Bad(path, $"the header length {headerLength} exceeds the file ({fileLength} bytes) or the {MaxHeaderBytes}-byte limit");
        byte[] json = new byte[headerLength];
        stream.ReadExactly(json);
        long dataStart = 8 + (long)headerLength, dataLength = fileLength - dataStart;

        JsonObject root;
        try
        {
            root = JsonNode.Parse(json) as JsonObject ?? throw Bad(path, "the header is not a JSON object");
        }
        catch (JsonException ex)
        {
            throw Bad(path, $"the header is not valid JSON ({ex.Message})");
        }

        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var entries = new List<SafetensorsEntry>();
        foreach (var (name, node) in root)
        {
            if (name == MetadataKey)
            {
                if (node is not JsonObject meta) throw Bad(path, "__metadata__ is not an object");
                foreach (var (k, v) in meta) metadata[k] = v is JsonValue value && value.TryGetValue(out string? s) ? s : throw Bad(path, $"metadata '{k}' is not a string");
                continue;
            }

            entries.Add(ParseEntry(name, node, path));
        }

        entries.Sort((a, b) => a.Begin.CompareTo(b.Begin));
        long expected = 0;
        foreach (var e in entries)
        {
            long size = e.ElementCount * DTypes.First(d => d.Type == e.DType).Size;
            if (e.End - e.Begin != size) throw Bad(path, $"tensor '{e.Name}' spans {e.End - e.Begin} bytes but {e.DType} [{string.Join(", ", e.Shape)}] needs {size}");
            if (e.Begin != expected) throw Bad(path, $"tensor '{e.Name}' starts at {e.Begin}, expected {expected} (overlapping or non-contiguous data)");
            expected = e.End;
        }

        if (expected != dataLength) throw Bad(path, $"the tensors cover {expected} bytes but the data section has {dataLength} (truncated or trailing data)");
        return new SafetensorsHeader(entries, metadata, dataStart);
    }

    private static SafetensorsEntry ParseEntry(string name, JsonNode? node, string path)
    {
        try
        {
            var o = node as JsonObject ?? throw Bad(path, $"tensor '{name}' is not an object");
            string code = o["dtype"]!.GetValue<string>();
            var dtype = DTypes.FirstOrDefault(d => d.Code == code);
            if (dtype.Code is null) throw Bad(path, $"tensor '{name}' has unknown dtype '{code}'");
            long[] shape = o["shape"]!.AsArray().Select(s => s!.GetValue<long>()).ToArray();
            var offsets = o["data_offsets"]!.AsArray().Select(s => s!.GetValue<long>()).ToArray();
            if (shape.Any(s => s < 0)) throw Bad(path, $"tensor '{name}' has a negative dimension");
            if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] < offsets[0]) throw Bad(path, $"tensor '{name}' has invalid data_offsets [{string.Join(", ", offsets)}]");
            return new SafetensorsEntry(name, dtype.Type, shape, offsets[0], offsets[1]);
        }
        catch (Exception ex) when (ex is NullReferenceException or InvalidOperationException or FormatException)
        {
            throw Bad(path, $"tensor '{name}' lacks a well-formed dtype, shape or data_offsets");
        }
    }

    private static InvalidDataException Bad(string path, string why) => new($"Safetensors file '{path}': {why}.");
}
