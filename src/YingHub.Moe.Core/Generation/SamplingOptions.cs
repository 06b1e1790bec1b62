using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Core.Generation;

/// <summary>How <see cref="TokenGenerator"/> picks each next token. <see cref="GetValidationErrors"/> names any bad field.</summary>
public sealed class SamplingOptions : IValidatableOptions
{
    /// <summary>New tokens to generate, [0, 1,000,000].</summary>
    public int MaxNewTokens { get; set; } = 200;

    /// <summary>Softmax temperature, (0, 100]; ignored when <see cref="Greedy"/>.</summary>
    public double Temperature { get; set; } = 1.0;

    /// <summary>
    /// Cosine temperature annealing over the generated length (YingHub-v2): step i of n uses
    /// <c>T_min + (T − T_min) · (0.5 + 0.5 · cos(π · i / n))</c>, with T_min = <see cref="EffectiveMinTemperature"/>:
    /// from T at the first token towards T_min at the last, more adventurous early and more conservative late (the
    /// shape of a cosine learning-rate decay to a minimum rate).
    /// </summary>
    public bool AnnealTemperature { get; set; }

    /// <summary>
    /// The floor of the annealed temperature (<see cref="AnnealTemperature"/>), (0, <see cref="Temperature"/>]; null
    /// (the default) is <see cref="DefaultMinTemperatureRatio"/> × <see cref="Temperature"/>. Without a floor the last
    /// tokens are sampled at a temperature near zero, which is greedy decoding with its loops. The default is relative
    /// to T because the temperature is a scale on the logits the user already chose: 0.1 · T sharpens the end of the
    /// text tenfold relative to its start whatever T is, where an absolute floor would exceed a small T. Ignored
    /// without annealing.
    /// </summary>
    public double? MinTemperature { get; set; }

    /// <summary>The default floor of the annealed temperature as a share of <see cref="Temperature"/>.</summary>
    public const double DefaultMinTemperatureRatio = 0.1;

    /// <summary>The floor the annealing uses: <see cref="MinTemperature"/>, or <see cref="DefaultMinTemperatureRatio"/> × <see cref="Temperature"/>.</summary>
    public double EffectiveMinTemperature => MinTemperature ?? DefaultMinTemperatureRatio * Temperature;

    /// <summary>Always take the most likely token.</summary>
    public bool Greedy { get; set; }

    /// <summary>Keep only the k most likely tokens, [1, vocab]; null keeps all.</summary>
    public int? TopK { get; set; }

    /// <summary>Nucleus sampling: keep the smallest set of most likely tokens whose mass reaches p, (0, 1]; null keeps all.</summary>
    public double? TopP { get; set; }

    /// <summary>Min-p sampling: keep tokens whose probability is at least p × the most likely token's, (0, 1]; null keeps all.</summary>
    public double? MinP { get; set; }

    /// <summary>Presence penalty (OpenAI style): subtracted from the logit of every token that occurs in the last <see cref="RepetitionWindow"/> tokens, [0, 100].</summary>
    public double PresencePenalty { get; set; }

    /// <summary>Frequency penalty (OpenAI style): subtracted from a token's logit once per occurrence in the last <see cref="RepetitionWindow"/> tokens, [0, 100].</summary>
    public double FrequencyPenalty { get; set; }

    /// <summary>
    /// Stop sequences as token ids: a sequence stops right after it produces one of them (the stop tokens are the last
    /// ones returned for it). Empty by default.
    /// </summary>
    public IList<long[]> StopSequences { get; set; } = [];

    /// <summary>CTRL repetition penalty θ ≥ 1 on tokens of the last <see cref="RepetitionWindow"/> tokens: positive logits are divided by θ, negative multiplied (1 = off).</summary>
    public double RepetitionPenalty { get; set; } = 1.0;

    /// <summary>How many recent tokens the repetition penalty looks at, [1, 1,000,000].</summary>
    public int RepetitionWindow { get; set; } = 64;

    /// <summary>
    /// Custom logits processors (as Hugging Face's <c>LogitsProcessor</c>), applied in order before the built-in
    /// penalties and samplers: each receives the next-token logits (B, V) float32 and the tokens of each sequence so far
    /// (prompt included) and returns the logits to use (a new tensor or the same one). B counts the sequences still
    /// generating: in a batch, a sequence that produced a stop sequence leaves it, so row r is the r-th sequence still
    /// running, not always prompt r (tell sequences apart by their tokens, e.g. the prompt). They run under
    /// <c>torch.inference_mode()</c>, like the whole decoding step: a tensor a processor makes there and keeps for later
    /// cannot take part in autograd or be modified in place outside inference mode. Empty by default; not serialized.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public IList<Func<TorchSharp.torch.Tensor, IReadOnlyList<IReadOnlyList<long>>, TorchSharp.torch.Tensor>> LogitsProcessors { get; set; } = [];

    /// <summary>Seed of the sampling generator; null draws from the global torch generator.</summary>
    public long? Seed { get; set; }

    /// <summary>
    /// When the KV cache is full (the context length is reached), the cache restarts from the last
    /// <c>SlideKeep · context</c> tokens, recomputed in one forward; (0, 1). With learned absolute positions a cached
    /// key cannot move to a new position, so sliding is a recompute; the logits equal a fresh forward over that window.
    /// </summary>
    public double SlideKeep { get; set; } = 0.5;

    /// <summary>
    /// Decode with the KV cache (true) or recompute the whole window for every token (false). A model that applies
    /// expert capacity in evaluation (<see cref="Modules.MoeForCausalLM.SupportsCachedDecoding"/> false) always recomputes.
    /// </summary>
    public bool UseCache { get; set; } = true;

    /// <summary>
    /// Read the prompt as a bidirectional prefix (<see cref="Modules.CausalLMInput.PrefixLength"/>), as a model trained
    /// with prefix LM or UL2's denoisers saw its context; the generated tokens stay causal. False (the default): causal
    /// attention over the prompt too. With the cache the prompt runs as the prefix into the empty cache; when the window
    /// slides, the part of the prompt still in it is the prefix of the recomputed window.
    /// </summary>
    public bool PromptAsPrefix { get; set; }

    /// <inheritdoc />
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        errors.Require(MaxNewTokens is >= 0 and <= 1_000_000, nameof(MaxNewTokens), MaxNewTokens, "[0, 1000000]");
        errors.Require(Temperature > 0 && Temperature <= 100, nameof(Temperature), Temperature, "(0, 100]");
        errors.Require(MinTemperature is not { } tMin || (tMin > 0 && tMin <= Temperature), nameof(MinTemperature), MinTemperature,
            $"(0, Temperature = {Temperature}], or null for {DefaultMinTemperatureRatio} × Temperature");
        errors.Require(TopK is null or >= 1, nameof(TopK), TopK, "[1, vocab], or null");
        errors.Require(TopP is not { } p || (p > 0 && p <= 1), nameof(TopP), TopP, "(0, 1], or null");
        errors.Require(MinP is not { } m || (m > 0 && m <= 1), nameof(MinP), MinP, "(0, 1], or null");
        errors.Require(PresencePenalty >= 0 && PresencePenalty <= 100, nameof(PresencePenalty), PresencePenalty, "[0, 100]");
        errors.Require(FrequencyPenalty >= 0 && FrequencyPenalty <= 100, nameof(FrequencyPenalty), FrequencyPenalty, "[0, 100]");
        errors.Require(LogitsProcessors is not null && !LogitsProcessors.Any(f => f is null), nameof(LogitsProcessors),
            LogitsProcessors is null ? null : $"[{string.Join(", ", LogitsProcessors.Select(f => f is null ? "null" : "processor"))}]",
            "a list without null processors");
        errors.Require(StopSequences is not null && !StopSequences.Any(q => q is null || q.Length == 0), nameof(StopSequences),
            StopSequences is null ? null : $"[{string.Join(", ", StopSequences.Select(q => q is null ? "null" : $"[{string.Join(",", q)}]"))}]",
            "a list of non-empty token-id sequences");
        errors.Require(RepetitionPenalty >= 1 && RepetitionPenalty <= 100, nameof(RepetitionPenalty), RepetitionPenalty, "[1, 100]");
        errors.Require(SlideKeep > 0 && SlideKeep < 1, nameof(SlideKeep), SlideKeep, "(0, 1)");
        errors.Require(RepetitionWindow is >= 1 and <= 1_000_000, nameof(RepetitionWindow), RepetitionWindow, "[1, 1000000]");
        return errors;
    }

    /// <summary>The temperature of generated token <paramref name="i"/> (0-based) of <paramref name="n"/> (see <see cref="AnnealTemperature"/>).</summary>
    public double TemperatureAt(int i, int n)
    {
        if (!AnnealTemperature || n <= 0) return Temperature;
        double floor = EffectiveMinTemperature;
        return floor + (Temperature - floor) * (0.5 + 0.5 * Math.Cos(Math.PI * i / n));
    }
}
