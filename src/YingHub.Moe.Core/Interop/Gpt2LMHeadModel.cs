using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using YingHub.Moe.Core.Checkpoints;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Quantization;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Interop;

/// <summary>
/// OpenAI GPT-2 in TorchSharp, loadable from Hugging Face files (<c>config.json</c> + <c>model.safetensors</c>):
/// learned positions, pre-LayerNorm blocks, GELU (tanh) MLP, LM head tied to the token embedding. State-dict keys are
/// Hugging Face's (<c>wte</c>, <c>wpe</c>, <c>h.{i}.attn.c_attn</c>, ..., <c>ln_f</c>), and the projections keep HF's
/// <c>Conv1D</c> layout, weight (in, out) with <c>y = x W + b</c> (the transpose of a Linear's), so files load as they are.
/// Used as a perplexity scorer and as the source of MoE upcycling (<see cref="Gpt2Upcycling"/>).
/// </summary>
public sealed class Gpt2LMHeadModel : nn.Module<Tensor, Tensor>, ICausalLanguageModel
{
    [ComponentName(Name = "wte")] private readonly Embedding _wte; // (V, C)
    [ComponentName(Name = "wpe")] private readonly Embedding _wpe; // (T, C)
    [ComponentName(Name = "h")] private readonly ModuleList<Gpt2Block> _blocks;
    [ComponentName(Name = "ln_f")] private readonly LayerNorm _lnF;

    /// <summary>A GPT-2 with freshly initialised weights (normal(0, 0.02), as GPT-2).</summary>
    public Gpt2LMHeadModel(Gpt2Config config) : base(nameof(Gpt2LMHeadModel))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.ThrowIfInvalid(nameof(config));
        Config = config;
        _wte = nn.Embedding(config.VocabSize, config.Embedding);
        _wpe = nn.Embedding(config.Positions, config.Embedding);
        using (torch.no_grad())
        {
            nn.init.normal_(_wte.weight!, 0, 0.02);
            nn.init.normal_(_wpe.weight!, 0, 0.01);
        }

        _blocks = nn.ModuleList(Enumerable.Range(0, config.Layers).Select(_ => new Gpt2Block(config)).ToArray());
        _lnF = nn.LayerNorm(config.Embedding, config.LayerNormEpsilon);
        RegisterComponents();
    }

    /// <summary>The configuration.</summary>
    public Gpt2Config Config { get; }

    /// <inheritdoc />
    public int ContextLength => Config.Positions;

    /// <inheritdoc />
    public int VocabSize => Config.VocabSize;

    /// <inheritdoc />
    public Device Device => _wte.weight!.device;

    /// <summary>
    /// Loads <c>config.json</c> and <c>model.safetensors</c> from a Hugging Face GPT-2 directory. Keys may carry the
    /// <c>transformer.</c> prefix of <c>GPT2LMHeadModel</c> checkpoints; the causal-mask buffers (<c>attn.bias</c>,
    /// <c>attn.masked_bias</c>) and a stored <c>lm_head.weight</c> (tied to <c>wte</c>) are skipped.
    /// </summary>
    /// <exception cref="InvalidDataException">A tensor is missing, unexpected or mis-shaped; the message names each one.</exception>
    public static Gpt2LMHeadModel FromPretrained(string directory)
    {
        var model = new Gpt2LMHeadModel(Gpt2Config.Load(Path.Combine(directory, "config.json")));
        try
        {
            using var scope = torch.NewDisposeScope();
            var file = Safetensors.Read(Path.Combine(directory, "model.safetensors"));
            var renamed = new Dictionary<string, Tensor>();
            foreach (var (key, tensor) in file)
            {
                string name = key.StartsWith("transformer.", StringComparison.Ordinal) ? key["transformer.".Length..] : key;
                if (name.EndsWith(".attn.bias", StringComparison.Ordinal) || name.EndsWith(".attn.masked_bias", StringComparison.Ordinal) || name == "lm_head.weight") continue;
                renamed[name] = tensor;
            }

            MoeCheckpoint.LoadState(model, renamed, Path.Combine(directory, "model.safetensors"), strict: true);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Logits (B, T, V) of ids (B, T).</summary>
    public override Tensor forward(Tensor inputIds)
    {
        long t = inputIds.shape[^1];
        if (t > Config.Positions) throw new ArgumentException($"Sequence length {t} exceeds the context length {Config.Positions}.", nameof(inputIds));
        using var scope = torch.NewDisposeScope();
        var x = _wte.call(inputIds) + _wpe.call(torch.arange(t, device: inputIds.device)); // (B, T, C)
        foreach (var block in _blocks) x = block.call(x);
        var logits = torch.matmul(_lnF.call(x), _wte.weight!.t());                        // (B, T, V), tied head
        return logits.MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public Tensor Logits(Tensor inputIds) => call(inputIds);
}

/// <summary>
/// Hugging Face's <c>Conv1D</c>: a linear layer whose weight is stored (in, out). Once quantized
/// (<see cref="IQuantizableLayer"/>) the weight is dequantized on every forward and the float Parameter is gone.
/// </summary>
internal sealed class Conv1D : nn.Module<Tensor, Tensor>, ILinearLayer, IQuantizableLayer
{
    [ComponentName(Name = "weight")] private Parameter? _weight; // (in, out); null once quantized
    [ComponentName(Name = "bias")] private readonly Parameter _bias;     // (out)
    private QuantizedWeight? _quantized;                          // (in, out) quantized, registered as quantized_weight

    public Conv1D(int inFeatures, int outFeatures) : base(nameof(Conv1D))
    {
        (InFeatures, OutFeatures) = (inFeatures, outFeatures);
        _weight = Owned.Parameter(torch.empty(inFeatures, outFeatures));
        using (torch.no_grad()) nn.init.normal_(_weight, 0, 0.02);
        _bias = Owned.Parameter(torch.zeros(outFeatures));
        RegisterComponents();
    }

    /// <inheritdoc />
    public Parameter Weight => _weight ?? throw QuantizedLayers.NoFloatWeight(this);

    /// <inheritdoc />
    public int InFeatures { get; }

    /// <inheritdoc />
    public int OutFeatures { get; }

    /// <inheritdoc />
    public bool InputMajor => true;

    /// <inheritdoc />
    public QuantizationKind? Quantization => _quantized?.Kind;

    /// <inheritdoc />
    public Tensor StoredWeight => (Tensor?)_weight ?? _quantized!.Codes;

    /// <inheritdoc />
    public QuantizedWeight? Quantized => _quantized;

    /// <inheritdoc />
    public long WeightElements => (long)InFeatures * OutFeatures;

    /// <inheritdoc />
    public void Quantize(QuantizationKind kind, int blockSize)
    {
        if (_weight is null) throw QuantizedLayers.QuantizedAlready(this);
        _quantized = QuantizedWeight.Replace(this, _weight, kind, blockSize, () => ConditionallyRegisterParameter("weight", (Parameter?)null));
        _weight = null;
    }

    public override Tensor forward(Tensor x) // (..., in) -> (..., out)
    {
        if (_quantized is null) return torch.matmul(x, _weight!) + _bias;
        using var scope = torch.NewDisposeScope();
        return (torch.matmul(x, _quantized.Dequantize()) + _bias).MoveToOuterDisposeScope();
    }
}

/// <summary>One GPT-2 block: <c>x + attn(ln_1(x))</c>, then <c>x + mlp(ln_2(x))</c>.</summary>
internal sealed class Gpt2Block : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "ln_1")] private readonly LayerNorm _ln1;
    [ComponentName(Name = "attn")] private readonly Gpt2Attention _attn;
    [ComponentName(Name = "ln_2")] private readonly LayerNorm _ln2;
    [ComponentName(Name = "mlp")] private readonly Gpt2Mlp _mlp;

    public Gpt2Block(Gpt2Config config) : base(nameof(Gpt2Block))
    {
        _ln1 = nn.LayerNorm(config.Embedding, config.LayerNormEpsilon);
        _attn = new Gpt2Attention(config);
        _ln2 = nn.LayerNorm(config.Embedding, config.LayerNormEpsilon);
        _mlp = new Gpt2Mlp(config);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        x = x + _attn.call(_ln1.call(x));
        return (x + _mlp.call(_ln2.call(x))).MoveToOuterDisposeScope();
    }
}

internal sealed class Gpt2Attention : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "c_attn")] private readonly Conv1D _cAttn; // C -> 3C
    [ComponentName(Name = "c_proj")] private readonly Conv1D _cProj; // C -> C
    private readonly int _heads;

    public Gpt2Attention(Gpt2Config config) : base(nameof(Gpt2Attention))
    {
        _heads = config.Heads;
        _cAttn = new Conv1D(config.Embedding, 3 * config.Embedding);
        _cProj = new Conv1D(config.Embedding, config.Embedding);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) // (B, T, C)
    {
        using var scope = torch.NewDisposeScope();
        long b = x.shape[0], t = x.shape[1], c = x.shape[2];
        var qkv = _cAttn.call(x).view(b, t, 3, _heads, c / _heads).permute(2, 0, 3, 1, 4); // (3, B, nh, T, hd)
        var y = nn.functional.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], null, 0.0, t > 1); // (B, nh, T, hd)
        return _cProj.call(y.transpose(1, 2).reshape(b, t, c)).MoveToOuterDisposeScope();
    }
}

internal sealed class Gpt2Mlp : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "c_fc")] private readonly Conv1D _cFc;     // C -> 4C
    [ComponentName(Name = "c_proj")] private readonly Conv1D _cProj; // 4C -> C
    private readonly bool _tanh;

    public Gpt2Mlp(Gpt2Config config) : base(nameof(Gpt2Mlp))
    {
        int inner = config.Inner ?? 4 * config.Embedding;
        _cFc = new Conv1D(config.Embedding, inner);
        _cProj = new Conv1D(inner, config.Embedding);
        _tanh = config.Activation != "gelu";
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var h = _cFc.call(x);
        h = _tanh ? nn.functional.gelu(h, GELU.Approximate.tanh) : nn.functional.gelu(h);
        return _cProj.call(h).MoveToOuterDisposeScope();
    }
}
