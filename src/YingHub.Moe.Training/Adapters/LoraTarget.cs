using TorchSharp;
using TorchSharp.Modules;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Quantization;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Adapters;

/// <summary>
/// One linear layer LoRA adapts: its <c>named_modules()</c> name, the module (hooks attach to it), its weight and
/// layout. Found among a model's modules by <see cref="Find"/>: <see cref="ILinearLayer"/>s (attention projections,
/// GPT-2's <c>Conv1D</c>, input-major) and TorchSharp's <c>nn.Linear</c> ((out, in)), except submodules the model runs
/// without <c>call</c> (<see cref="IUnhookedSubmodules"/>: the untied LM head).
/// </summary>
internal sealed record LoraTarget(string Name, nn.Module<Tensor, Tensor> Module, int InFeatures, int OutFeatures, bool InputMajor)
{
    /// <summary>
    /// The tensor holding the layer's weight, read from the layer on every use (a module move replaces its Parameter
    /// objects): the float weight, or for a quantized layer (<see cref="ILinearLayer.Quantization"/>) its packed codes,
    /// which tell the device only (<see cref="AddToWeight"/> refuses such a layer).
    /// </summary>
    public Tensor Weight => Module is ILinearLayer layer ? layer.StoredWeight : ((Linear)Module).weight!;

    /// <summary>The targets <paramref name="patterns"/> select in <paramref name="model"/>, in the model's module order.</summary>
    /// <exception cref="ArgumentException">A pattern selects no module, or only modules LoRA cannot adapt; the message names them.</exception>
    public static IReadOnlyList<LoraTarget> Find(nn.Module model, IEnumerable<string> patterns)
    {
        var unhooked = (model as IUnhookedSubmodules)?.UnhookedSubmodules ?? [];
        var modules = model.named_modules().Where(m => m.name.Length > 0).ToList();
        var selected = new HashSet<string>(StringComparer.Ordinal);
        foreach (string pattern in patterns)
        {
            var hits = modules.Where(m => LoraOptions.Matches(pattern, m.name)).ToList();
            if (hits.Count == 0)
                throw new ArgumentException($"LoRA target pattern '{pattern}' matches no module; a pattern matches a module whose name equals it or ends with '.{pattern}' (e.g. 'qkv_proj', 'c_attn', 'layers.0.self_attn.o_proj').", nameof(patterns));
            var usable = hits.Where(m => Refusal(m.name, m.module, unhooked) is null).ToList();
            if (usable.Count == 0)
                throw new ArgumentException($"LoRA target pattern '{pattern}' matches only modules LoRA cannot adapt: " +
                    string.Join("; ", hits.Take(4).Select(m => $"'{m.name}' ({Refusal(m.name, m.module, unhooked)})")) + (hits.Count > 4 ? $"; and {hits.Count - 4} more" : "") +
                    ". LoRA adapts the attention projections (qkv_proj, o_proj), GPT-2's Conv1D layers (c_attn, c_proj, c_fc) and nn.Linear layers run through call.", nameof(patterns));
            selected.UnionWith(usable.Select(m => m.name));
        }

        return modules.Where(m => selected.Contains(m.name)).Select(m => Create(m.name, m.module)).ToArray();
    }

    /// <summary>Why <paramref name="module"/> cannot be a target, or null when it can.</summary>
    private static string? Refusal(string name, nn.Module module, IReadOnlyCollection<string> unhooked)
    {
        if (module is not (ILinearLayer or Linear)) return $"a {module.GetType().Name}, not a linear layer; stacked experts are not supported yet";
        if (unhooked.Contains(name)) return "the model reads its weight without calling it, so hooks never fire: the LM head is not supported";
        return null;
    }

    private static LoraTarget Create(string name, nn.Module module) => module switch
    {
        ILinearLayer layer => new LoraTarget(name, (nn.Module<Tensor, Tensor>)module, layer.InFeatures, layer.OutFeatures, layer.InputMajor),
        Linear linear => new LoraTarget(name, linear, (int)linear.weight!.size(1), (int)linear.weight!.size(0), InputMajor: false),
        _ => throw new InvalidOperationException($"'{name}' is not a linear layer."),
    };

    /// <summary>
    /// Adds <paramref name="factor"/> · <paramref name="delta"/> ((out, in), any float dtype) to the weight in place, in
    /// its own layout (the transpose for an input-major weight), without autograd.
    /// </summary>
    /// <exception cref="InvalidOperationException">
    /// The layer belongs to a quantized model (<see cref="ModelQuantization"/>): its base is frozen (a quantized layer's
    /// weight is codes), so LoRA cannot merge into it. Every layer of such a model refuses, so a merge fails at its first
    /// target, before anything is added.
    /// </exception>
    public void AddToWeight(Tensor delta, double factor)
    {
        if (ModelQuantization.IsPartOfQuantizedModel(Module))
        {
            string why = Module is ILinearLayer { Quantization: { } kind } ? $"its base weight is quantized ({kind})" : "it belongs to a quantized base";
            throw new InvalidOperationException($"Cannot merge a LoRA update into '{Name}': {why}, and a quantized base is frozen. Keep the adapter unmerged (active through its hooks), or merge into the float model.");
        }

        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var weight = Weight;
        var d = InputMajor ? delta.t() : delta;                 // (in, out) or (out, in): the weight's layout
        if (d.dtype != weight.dtype || d.device_type != weight.device_type) d = d.to(weight.dtype, weight.device);
        weight.add_(d, factor);
    }
}
