namespace YingHub.Moe.Core.Configuration;

public sealed partial class MoeModelOptions : IValidatableOptions
{
    /// <inheritdoc />
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        errors.Require(VocabSize is >= 1 and <= 10_000_000, nameof(VocabSize), VocabSize, "[1, 10000000]");
        errors.Require(ContextLength is >= 1 and <= 1_048_576, nameof(ContextLength), ContextLength, "[1, 1048576]");
        errors.Require(NumHeads >= 1, nameof(NumHeads), NumHeads, "[1, HiddenSize]");
        if (HiddenSize is < 1 or > 65_536) errors.Add(new(nameof(HiddenSize), HiddenSize, "[1, 65536]"));
        else if (NumHeads >= 1 && HiddenSize % NumHeads != 0) errors.Add(new(nameof(HiddenSize), HiddenSize, $"a multiple of NumHeads = {NumHeads}"));
        else if (Positions == PositionEncoding.Rope && NumHeads >= 1 && HeadDim % 2 != 0)
            errors.Add(new(nameof(HeadDim), HeadDim, "even (HiddenSize / NumHeads) for rotary position embeddings"));
        errors.Require(NumKeyValueHeads is not { } kv || (kv >= 1 && NumHeads >= 1 && NumHeads % kv == 0), nameof(NumKeyValueHeads), NumKeyValueHeads,
            $"a divisor of NumHeads = {NumHeads} (1 to NumHeads), or null for NumHeads");
        errors.Require(NumLayers is >= 1 and <= 1024, nameof(NumLayers), NumLayers, "[1, 1024]");
        errors.Require(Dropout is >= 0 and < 1, nameof(Dropout), Dropout, "[0, 1)");
        errors.Require(EmbeddingDropout is null or (>= 0 and < 1), nameof(EmbeddingDropout), EmbeddingDropout, "[0, 1), or null for Dropout's value");
        errors.Require(AttentionDropout is >= 0 and < 1, nameof(AttentionDropout), AttentionDropout, "[0, 1)");
        errors.Require(StochasticDepth is >= 0 and < 1, nameof(StochasticDepth), StochasticDepth, "[0, 1)");
        errors.Require(RopeTheta > 0 && double.IsFinite(RopeTheta), nameof(RopeTheta), RopeTheta, "(0, ...) and finite");
        errors.Require(NormEpsilon > 0 && NormEpsilon <= 0.1, nameof(NormEpsilon), NormEpsilon, "(0, 0.1]");
        errors.Require(NumExperts is >= 1 and <= 1024, nameof(NumExperts), NumExperts, "[1, 1024]");
        errors.Require(TopK >= 1 && TopK <= NumExperts, nameof(TopK), TopK, $"[1, NumExperts = {NumExperts}]");
        errors.Require(ExpertMultiplier is >= 1 and <= 64, nameof(ExpertMultiplier), ExpertMultiplier, "[1, 64]");
        errors.Require(IntermediateSize is null or (>= 1 and <= 1_048_576), nameof(IntermediateSize), IntermediateSize, "[1, 1048576], or null for ExpertMultiplier × HiddenSize");
        errors.Require(DeepExperts >= 0 && DeepExperts <= NumExperts, nameof(DeepExperts), DeepExperts, $"[0, NumExperts = {NumExperts}]");
        errors.Require(NoiseTemperatureMin > 0, nameof(NoiseTemperatureMin), NoiseTemperatureMin, "(0, ...)");
        errors.Require(NoiseTemperatureMax >= NoiseTemperatureMin, nameof(NoiseTemperatureMax), NoiseTemperatureMax, $"[NoiseTemperatureMin = {NoiseTemperatureMin}, ...)");
        errors.Require(CapacityFactor is not { } cf || (cf > 0 && cf <= 1024), nameof(CapacityFactor), CapacityFactor, "(0, 1024] or null (dropless)");
        errors.Require(DenseMultiplier is >= 1 and <= 64, nameof(DenseMultiplier), DenseMultiplier, "[1, 64]");
        errors.Require(MoeEvery >= 1 && MoeEvery <= NumLayers, nameof(MoeEvery), MoeEvery, $"[1, NumLayers = {NumLayers}]");
        errors.Require(LoadBalancingCoef >= 0 && LoadBalancingCoef <= 1e6, nameof(LoadBalancingCoef), LoadBalancingCoef, "[0, 1000000]");
        errors.Require(ZLossCoef >= 0 && ZLossCoef <= 1e6, nameof(ZLossCoef), ZLossCoef, "[0, 1000000]");
        errors.Require(UtilizationKlCoef >= 0 && UtilizationKlCoef <= 1e6, nameof(UtilizationKlCoef), UtilizationKlCoef, "[0, 1000000]");
        errors.Require(UtilizationWindow is >= 1 and <= 100_000, nameof(UtilizationWindow), UtilizationWindow, "[1, 100000]");
        errors.Require(UtilizationThreshold >= 0 && UtilizationThreshold <= 1, nameof(UtilizationThreshold), UtilizationThreshold, "[0, 1]");
        errors.Require(InitStd > 0 && InitStd <= 1, nameof(InitStd), InitStd, "(0, 1]");
        errors.Require(Enum.IsDefined(Init), nameof(Init), Init, string.Join(", ", Enum.GetNames<InitScheme>()));
        errors.Require(ResidualInit is not { } residual || Enum.IsDefined(residual), nameof(ResidualInit), ResidualInit,
            string.Join(", ", Enum.GetNames<ResidualInitScheme>()) + ", or null for the scheme's convention");
        errors.Require(LabelSmoothing is >= 0 and < 1, nameof(LabelSmoothing), LabelSmoothing, "[0, 1)");
        errors.Require(!(LmHeadBias && TieWordEmbeddings), nameof(LmHeadBias), LmHeadBias, "false with TieWordEmbeddings (a tied head has no bias of its own)");
        RequireDefined(errors, AttentionScale, nameof(AttentionScale));
        RequireDefined(errors, NormPosition, nameof(NormPosition));
        RequireDefined(errors, BiasInit, nameof(BiasInit));
        RequireDefined(errors, CapacityRounding, nameof(CapacityRounding));
        RequireDefined(errors, CapacityRanking, nameof(CapacityRanking));
        return errors;
    }

    private static void RequireDefined<T>(List<OptionError> errors, T value, string field) where T : struct, Enum =>
        errors.Require(Enum.IsDefined(value), field, value, string.Join(", ", Enum.GetNames<T>()));
}
