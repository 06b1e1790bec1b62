using System.Text.Json;
using TorchSharp;
using YingHub.Moe.Core.Checkpoints;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Adapters.Hydra;

/// <summary>The JSON form of a router: its kind, adapter names, selection settings and named float32 tensors (row-major values with their shape).</summary>
internal sealed record RouterFile(string Format, int Version, string Kind, string[] Names, int TopK, double Temperature,
    Dictionary<string, RouterFile.TensorData> Tensors, Dictionary<string, double>? Settings = null)
{
    public const string FormatName = "yinghub-adapter-router";
    public const int FormatVersion = 1;

    public sealed record TensorData(long[] Shape, float[] Values);

    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static TensorData From(Tensor t)
    {
        using var cpu = t.detach().to(ScalarType.Float32, CPU).contiguous();
        return new TensorData(cpu.shape, cpu.data<float>().ToArray());
    }

    public Tensor Tensor(string name, string path)
    {
        if (!Tensors.TryGetValue(name, out var data) || data.Shape is null || data.Values is null)
            throw new InvalidDataException($"'{path}': the router has no tensor '{name}'.");
        if (data.Shape.Aggregate(1L, (a, b) => a * b) != data.Values.Length)
            throw new InvalidDataException($"'{path}': tensor '{name}' has {data.Values.Length} values for shape [{string.Join(", ", data.Shape)}].");
        return torch.tensor(data.Values, data.Shape);
    }

    public void Write(string path) => AtomicFile.WriteAllText(path, JsonSerializer.Serialize(this, Json));

    public static RouterFile Read(string path)
    {
        RouterFile? file = JsonSerializer.Deserialize<RouterFile>(File.ReadAllText(path), Json);
        if (file is null || file.Format != FormatName || file.Version != FormatVersion || file.Names is null || file.Tensors is null)
            throw new InvalidDataException($"'{path}' is not a {FormatName} file of version {FormatVersion}.");
        return file;
    }
}
