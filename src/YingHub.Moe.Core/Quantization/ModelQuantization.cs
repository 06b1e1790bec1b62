using System.Runtime.CompilerServices;
using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Interop;
using YingHub.Moe.Core.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Quantization;

/// <summary>
/// A QLoRA-style quantized base: <see cref="Quantize"/> replaces the float weights of a model's linear layers (the
/// attention projections, the stacked experts and dense FFN layers of a <c>MoeForCausalLM</c>, GPT-2's <c>Conv1D</c>
/// layers) by blockwise NF4 or int8 codes (<see cref="BlockQuantization"/>), frees the float weights, and freezes the
/// model. Each such layer dequantizes its weight on the fly in every forward. Embeddings, norms, the router, the LM head
/// and biases stay float. A quantized model is for inference and for training LoRA adapters on top: training the base
/// is refused (<see cref="ThrowIfQuantized"/>), and so is merging an adapter into a quantized layer. A quantized model
/// cannot be saved as a checkpoint of the float model (its state dict holds <c>quantized_weight.codes</c> and
/// <c>.absmax</c> instead of <c>weight</c>): quantize after loading.
/// </summary>
public static class ModelQuantization
{
    private static readonly ConditionalWeakTable<nn.Module, object> QuantizedModelParts = new();

    /// <summary>
    /// Quantizes <paramref name="model"/>'s layers selected by <paramref name="options"/> in place (on their device),
    /// sets <c>requires_grad = false</c> on every remaining parameter, and reports the bytes before and after.
    /// </summary>
    /// <exception cref="ArgumentException">Invalid options, or a target pattern that selects no quantizable layer (the message names it).</exception>
    /// <exception cref="InvalidOperationException">The model is quantized already.</exception>
    public static QuantizationReport Quantize(nn.Module model, QuantizationOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        options.ThrowIfInvalid(nameof(options));
        if (IsQuantized(model)) throw new InvalidOperationException("The model is quantized already.");
        var layers = model.named_modules().Where(m => m.module is IQuantizableLayer).Select(m => (m.name, Layer: (IQuantizableLayer)m.module)).ToList();
        if (options.TargetModules is { } patterns)
        {
            foreach (string pattern in patterns)
            {
                if (!layers.Any(l => QuantizationOptions.Matches(pattern, l.name)))
                    throw new ArgumentException($"Quantization target pattern '{pattern}' selects no quantizable layer; quantizable: attention projections (qkv_proj, o_proj), expert and FFN layers (fc1, fc2, fc3) and GPT-2's Conv1D (c_attn, c_proj, c_fc).", nameof(options));
            }

            layers = layers.Where(l => patterns.Any(p => QuantizationOptions.Matches(p, l.name))).ToList();
        }

        long before = TensorBytes(model);
        var groups = new List<QuantizedLayerGroup>();
        using (torch.no_grad())
        {
            foreach (var (name, layer) in layers)
            {
                long floatBytes = layer.WeightElements * FloatElementSize((nn.Module)layer);
                layer.Quantize(options.Kind, options.BlockSize);
                string kind = KindOf(name, layer);
                int i = groups.FindIndex(g => g.Kind == kind);
                var added = new QuantizedLayerGroup(kind, 1, layer.WeightElements, floatBytes, layer.Quantized!.Bytes);
                if (i < 0) groups.Add(added);
                else groups[i] = groups[i] with
                {
                    Layers = groups[i].Layers + 1, Elements = groups[i].Elements + added.Elements,
                    BytesBefore = groups[i].BytesBefore + added.BytesBefore, BytesAfter = groups[i].BytesAfter + added.BytesAfter,
                };
            }
        }

        foreach (var p in model.parameters()) p.requires_grad = false;
        foreach (var m in model.modules()) QuantizedModelParts.AddOrUpdate(m, model);
        return new QuantizationReport(options.Kind, options.BlockSize, groups, before, TensorBytes(model));
    }

    /// <summary>True when some layer of <paramref name="model"/> holds a quantized weight.</summary>
    public static bool IsQuantized(nn.Module model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model.modules().Any(m => m is QuantizedWeight);
    }

    /// <summary>
    /// True when <paramref name="module"/> is a quantized model or one of its modules (quantized or float, e.g. a norm or
    /// the router): a part of a frozen base, whose weights must not change (a LoRA merge refuses it).
    /// </summary>
    public static bool IsPartOfQuantizedModel(nn.Module module)
    {
        ArgumentNullException.ThrowIfNull(module);
        return QuantizedModelParts.TryGetValue(module, out _);
    }

    /// <summary>
    /// Throws when <paramref name="model"/> is quantized: its base is frozen. <paramref name="action"/> names what the
    /// caller was about to do (e.g. "train it").
    /// </summary>
    /// <exception cref="InvalidOperationException">The model is quantized.</exception>
    public static void ThrowIfQuantized(nn.Module model, string action)
    {
        if (IsQuantized(model))
            throw new InvalidOperationException($"Cannot {action}: the model's base is quantized ({Describe(model)}), and a quantized base is frozen. Train a LoRA adapter on it instead (an optimizer over adapter.named_parameters()), or load the float model.");
    }

    /// <summary>Bytes of every parameter and buffer of <paramref name="model"/> (elements × element size).</summary>
    public static long TensorBytes(nn.Module model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model.parameters().Sum(p => p.numel() * p.ElementSize) + model.buffers().Sum(b => b.numel() * b.ElementSize);
    }

    private static string Describe(nn.Module model)
    {
        var store = model.modules().OfType<QuantizedWeight>().First();
        return $"{store.Kind}, block {store.BlockSize}";
    }

    private static long FloatElementSize(nn.Module layer) =>
        layer.named_parameters(recurse: false).FirstOrDefault(p => p.name == "weight").parameter?.ElementSize ?? sizeof(float);

    private static string KindOf(string name, IQuantizableLayer layer) => layer switch
    {
        InputMajorLinear => "attention",
        Conv1D => "GPT-2 Conv1D",
        _ when name.Contains(".experts.", StringComparison.Ordinal) || name.Contains(".deep_experts.", StringComparison.Ordinal) => "experts",
        _ => "dense FFN",
    };
}
