using System.Text;
using TorchSharp;
using YingHub.Moe.Core.Checkpoints;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Checkpoints;

public sealed class SafetensorsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("yinghub-st-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Every_dtype_round_trips_with_scalars_and_empty_tensors()
    {
        using var scope = torch.NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>
        {
            ["f64"] = torch.randn(3, 2, dtype: ScalarType.Float64),
            ["f32"] = torch.randn(4),
            ["f16"] = torch.randn(2, 3).to(ScalarType.Float16),
            ["bf16"] = torch.randn(5).to(ScalarType.BFloat16),
            ["i64"] = torch.tensor(new long[] { long.MinValue, -1, 7 }),
            ["i32"] = torch.tensor(new[] { int.MaxValue, -5 }),
            ["i16"] = torch.tensor(new short[] { -300, 300 }),
            ["i8"] = torch.tensor(new sbyte[] { -128, 127 }),
            ["u8"] = torch.tensor(new byte[] { 0, 255 }),
            ["bool"] = torch.tensor(new[] { true, false, true }),
            ["scalar"] = torch.tensor(3.5f),
            ["empty"] = torch.zeros(0, 4),
            ["strided"] = torch.arange(12f).reshape(3, 4).t(), // non-contiguous input
        };
        string path = Path.Combine(_dir, "all.safetensors");
        Safetensors.Write(path, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        var back = Safetensors.Read(path, out var metadata);
        Assert.Equal("pt", metadata["format"]);
        Assert.Equal(tensors.Keys.Order(), back.Keys.Order());
        foreach (var (name, t) in tensors)
        {
            Assert.Equal(t.dtype, back[name].dtype);
            Assert.Equal(t.shape, back[name].shape);
            Assert.True(t.contiguous().bytes.SequenceEqual(back[name].bytes), name);
        }
    }

    [Fact]
    public void The_bytes_of_a_tiny_file_match_the_format_built_by_hand()
    {
        using var scope = torch.NewDisposeScope();
        string path = Path.Combine(_dir, "tiny.safetensors");
        Safetensors.Write(path, new Dictionary<string, Tensor> { ["b"] = torch.tensor(new short[] { 1, -2 }), ["a"] = torch.tensor(new[] { 1.0f, 2.0f }) });

        string json = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"I16\",\"shape\":[2],\"data_offsets\":[8,12]}}";
        int padded = (json.Length + 7) / 8 * 8;
        var expected = new List<byte>(BitConverter.GetBytes((ulong)padded));
        expected.AddRange(Encoding.UTF8.GetBytes(json.PadRight(padded)));
        expected.AddRange(BitConverter.GetBytes(1.0f));
        expected.AddRange(BitConverter.GetBytes(2.0f));
        expected.AddRange(BitConverter.GetBytes((short)1));
        expected.AddRange(BitConverter.GetBytes((short)-2));
        Assert.Equal(expected.ToArray(), File.ReadAllBytes(path));

        var header = Safetensors.ReadHeader(path);
        Assert.Equal(["a", "b"], header.Entries.Select(e => e.Name));
        Assert.Equal(8 + padded, header.DataStart);
    }

    [Fact]
    public void Truncated_and_malformed_files_give_clear_errors()
    {
        using var scope = torch.NewDisposeScope();
        string good = Path.Combine(_dir, "good.safetensors");
        Safetensors.Write(good, new Dictionary<string, Tensor> { ["w"] = torch.ones(4, 4) });
        byte[] bytes = File.ReadAllBytes(good);

        string truncated = Path.Combine(_dir, "truncated.safetensors");
        File.WriteAllBytes(truncated, bytes[..^5]);
        Assert.Contains("truncated", Assert.Throws<InvalidDataException>(() => Safetensors.Read(truncated)).Message);

        string badLength = Path.Combine(_dir, "length.safetensors");
        byte[] b = (byte[])bytes.Clone();
        BitConverter.GetBytes((ulong)1 << 40).CopyTo(b, 0);
        File.WriteAllBytes(badLength, b);
        Assert.Contains("header length", Assert.Throws<InvalidDataException>(() => Safetensors.ReadHeader(badLength)).Message);

        string overlap = Path.Combine(_dir, "overlap.safetensors");
        string json = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}";
        File.WriteAllBytes(overlap, [.. BitConverter.GetBytes((ulong)json.Length), .. Encoding.UTF8.GetBytes(json), .. new byte[12]]);
        var ex = Assert.Throws<InvalidDataException>(() => Safetensors.Read(overlap));
        Assert.Contains("tensor 'y' starts at 4, expected 8", ex.Message);

        string unknown = Path.Combine(_dir, "dtype.safetensors");
        json = "{\"x\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}";
        File.WriteAllBytes(unknown, [.. BitConverter.GetBytes((ulong)json.Length), .. Encoding.UTF8.GetBytes(json), .. new byte[2]]);
        Assert.Contains("unknown dtype 'F8_E4M3'", Assert.Throws<InvalidDataException>(() => Safetensors.Read(unknown)).Message);

        Assert.Contains("fewer than the 8-byte", Assert.Throws<InvalidDataException>(() =>
        {
            string tiny = Path.Combine(_dir, "tiny");
            File.WriteAllBytes(tiny, [1, 2, 3]);
            Safetensors.ReadHeader(tiny);
        }).Message);
    }
}
