using Microsoft.Extensions.Options;

namespace YingHub.Moe.Core.Configuration;

public sealed partial class MoeModelOptions
{
    /// <summary>Every problem with these options, each naming the field, its value and the allowed range.</summary>
    public IEnumerable<string> Validate()
    {
        static string Range(string name, object value, string range) => $"{name} = {value} is outside the allowed range {range}.";

        if (VocabSize is < 1 or > 10_000_000) yield return Range(nameof(VocabSize), VocabSize, "[1, 10000000]");
        if (ContextLength is < 1 or > 1_048_576) yield return Range(nameof(ContextLength), ContextLength, "[1, 1048576]");
        if (NumHeads < 1) yield return Range(nameof(NumHeads), NumHeads, "[1, HiddenSize]");
        if (HiddenSize is < 1 or > 65_536) yield return Range(nameof(HiddenSize), HiddenSize, "[1, 65536]");
        else if (NumHeads >= 1 && HiddenSize % NumHeads != 0)
            yield return $"HiddenSize = {HiddenSize} must be divisible by NumHeads = {NumHeads}.";
        else if (Positions == PositionEncoding.Rope && NumHeads >= 1 && HeadDim % 2 != 0)
            yield return $"HiddenSize / NumHeads = {HeadDim} must be even for rotary position embeddings.";
        if (NumLayers is < 1 or > 1024) yield return Range(nameof(NumLayers), NumLayers, "[1, 1024]");
        if (Dropout is < 0 or >= 1 || double.IsNaN(Dropout)) yield return Range(nameof(Dropout), Dropout, "[0, 1)");
        if (EmbeddingDropout is { } embd && (embd is < 0 or >= 1 || double.IsNaN(embd))) yield return Range(nameof(EmbeddingDropout), embd, "[0, 1), or null for Dropout's value");
        if (AttentionDropout is < 0 or >= 1 || double.IsNaN(AttentionDropout))
            yield return Range(nameof(AttentionDropout), AttentionDropout, "[0, 1)");
        if (StochasticDepth is < 0 or >= 1 || double.IsNaN(StochasticDepth))
            yield return Range(nameof(StochasticDepth), StochasticDepth, "[0, 1)");
        if (!(RopeTheta > 0 && double.IsFinite(RopeTheta))) yield return Range(nameof(RopeTheta), RopeTheta, "(0, ...) and finite");
        if (!(NormEpsilon > 0 && NormEpsilon <= 0.1)) yield return Range(nameof(NormEpsilon), NormEpsilon, "(0, 0.1]");
        if (NumExperts is < 1 or > 1024) yield return Range(nameof(NumExperts), NumExperts, "[1, 1024]");
        if (TopK < 1 || TopK > NumExperts) yield return Range(nameof(TopK), TopK, $"[1, NumExperts = {NumExperts}]");
        if (ExpertMultiplier is < 1 or > 64) yield return Range(nameof(ExpertMultiplier), ExpertMultiplier, "[1, 64]");
        if (DeepExperts < 0 || DeepExperts > NumExperts)
            yield return Range(nameof(DeepExperts), DeepExperts, $"[0, NumExperts = {NumExperts}]");
        if (!(NoiseTemperatureMin > 0)) yield return Range(nameof(NoiseTemperatureMin), NoiseTemperatureMin, "(0, ...)");
        if (!(NoiseTemperatureMax >= NoiseTemperatureMin))
            yield return Range(nameof(NoiseTemperatureMax), NoiseTemperatureMax, $"[NoiseTemperatureMin = {NoiseTemperatureMin}, ...)");
        if (CapacityFactor is { } cf && !(cf > 0 && cf <= 1024)) yield return Range(nameof(CapacityFactor), cf, "(0, 1024] or null (dropless)");
        if (DenseMultiplier is < 1 or > 64) yield return Range(nameof(DenseMultiplier), DenseMultiplier, "[1, 64]");
        if (MoeEvery < 1 || MoeEvery > NumLayers) yield return Range(nameof(MoeEvery), MoeEvery, $"[1, NumLayers = {NumLayers}]");
        if (!(LoadBalancingCoef >= 0 && LoadBalancingCoef <= 1e6)) yield return Range(nameof(LoadBalancingCoef), LoadBalancingCoef, "[0, 1000000]");
        if (!(ZLossCoef >= 0 && ZLossCoef <= 1e6)) yield return Range(nameof(ZLossCoef), ZLossCoef, "[0, 1000000]");
        if (!(UtilizationKlCoef >= 0 && UtilizationKlCoef <= 1e6)) yield return Range(nameof(UtilizationKlCoef), UtilizationKlCoef, "[0, 1000000]");
        if (UtilizationWindow is < 1 or > 100_000) yield return Range(nameof(UtilizationWindow), UtilizationWindow, "[1, 100000]");
        if (!(UtilizationThreshold >= 0 && UtilizationThreshold <= 1))
            yield return Range(nameof(UtilizationThreshold), UtilizationThreshold, "[0, 1]");
        if (!(InitStd > 0 && InitStd <= 1)) yield return Range(nameof(InitStd), InitStd, "(0, 1]");
        if (!Enum.IsDefined(Init)) yield return Range(nameof(Init), Init, string.Join(", ", Enum.GetNames<InitScheme>()));
        if (ResidualInit is { } residual && !Enum.IsDefined(residual))
            yield return Range(nameof(ResidualInit), residual, string.Join(", ", Enum.GetNames<ResidualInitScheme>()) + ", or null for the scheme's convention");
        if (LabelSmoothing is < 0 or >= 1 || double.IsNaN(LabelSmoothing))
            yield return Range(nameof(LabelSmoothing), LabelSmoothing, "[0, 1)");
    }

    /// <summary>Throws one <see cref="ArgumentException"/> listing every problem, if there is any.</summary>
    /// <param name="paramName">The parameter name to report (the caller's options argument).</param>
    public void ThrowIfInvalid(string paramName = "options")
    {
        string[] errors = Validate().ToArray();
        if (errors.Length > 0) throw new ArgumentException("Invalid MoE model options: " + string.Join(" ", errors), paramName);
    }
}

/// <summary><see cref="IValidateOptions{TOptions}"/> over <see cref="MoeModelOptions.Validate"/>, for the options pattern.</summary>
public sealed class MoeModelOptionsValidator : IValidateOptions<MoeModelOptions>
{
    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, MoeModelOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        string[] errors = options.Validate().ToArray();
        return errors.Length == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
