using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Building;

/// <summary>Describes the experts of each MoE layer; see <see cref="MoeModelBuilder.Experts"/>.</summary>
public sealed class ExpertsBuilder
{
    private readonly MoeModelOptions _options;

    internal ExpertsBuilder(MoeModelOptions options) => _options = options;

    /// <summary>Experts per MoE layer.</summary>
    public ExpertsBuilder Count(int experts) => Set(o => o.NumExperts = experts);

    /// <summary>Experts per token (k).</summary>
    public ExpertsBuilder TopK(int k) => Set(o => o.TopK = k);

    /// <summary>How many experts (the first ones) have two hidden layers; the rest have one.</summary>
    public ExpertsBuilder Deep(int count) => Set(o => o.DeepExperts = count);

    /// <summary>Expert hidden width as a multiple of the model width.</summary>
    public ExpertsBuilder Multiplier(int multiplier) => Set(o => { o.ExpertMultiplier = multiplier; o.IntermediateSize = null; });

    /// <summary>Expert hidden width in units (Hugging Face's <c>intermediate_size</c>), for widths that are not a whole multiple of the model width.</summary>
    public ExpertsBuilder Width(int intermediateSize) => Set(o => o.IntermediateSize = intermediateSize);

    /// <summary>Expert non-linearity.</summary>
    public ExpertsBuilder Activation(ExpertActivation activation) => Set(o => o.Activation = activation);

    /// <summary>
    /// Gate weights: a softmax over the k selected logits (true, Mixtral) or their full-softmax probabilities (false,
    /// Switch Transformer; use it for top-1 routing, where the normalised weight is always 1).
    /// </summary>
    public ExpertsBuilder NormalizeTopK(bool normalize) => Set(o => o.NormalizeTopKWeights = normalize);

    /// <summary>A plain top-k router.</summary>
    public ExpertsBuilder TopKRouter() => Set(o => o.Router = RouterKind.TopK);

    /// <summary>A noisy top-k router whose learnable noise temperature is clamped to [min, max].</summary>
    public ExpertsBuilder NoisyRouter(double minTemperature = 0.1, double maxTemperature = 2.0) =>
        Set(o => { o.Router = RouterKind.NoisyTopK; o.NoiseTemperatureMin = minTemperature; o.NoiseTemperatureMax = maxTemperature; });

    /// <summary>
    /// Expert capacity factor (Switch/OpenMoE); null for dropless. <paramref name="inEvaluation"/> applies it in
    /// evaluation too (makeMoE; generation then recomputes instead of caching), <paramref name="rounding"/> and
    /// <paramref name="ranking"/> choose how the capacity is counted and which assignments an over-full expert keeps.
    /// </summary>
    public ExpertsBuilder Capacity(double? factor, bool inEvaluation = false, CapacityRoundingRule rounding = CapacityRoundingRule.Ceil,
        CapacityRankingRule ranking = CapacityRankingRule.Position) =>
        Set(o => { o.CapacityFactor = factor; o.CapacityInEvaluation = inEvaluation; o.CapacityRounding = rounding; o.CapacityRanking = ranking; });

    /// <summary>A dense shared expert every token passes through, hidden width multiplier × C.</summary>
    public ExpertsBuilder Shared(int multiplier = 4) => Set(o => { o.SharedExpert = true; o.DenseMultiplier = multiplier; });

    /// <summary>MoE on every <paramref name="n"/>-th layer, dense FFN elsewhere (OpenMoE: 4 or 6).</summary>
    public ExpertsBuilder Every(int n) => Set(o => o.MoeEvery = n);

    private ExpertsBuilder Set(Action<MoeModelOptions> change)
    {
        change(_options);
        return this;
    }
}

/// <summary>Describes the auxiliary router losses; see <see cref="MoeModelBuilder.LoadBalancing"/>.</summary>
public sealed class LoadBalancingBuilder
{
    private readonly MoeModelOptions _options;

    internal LoadBalancingBuilder(MoeModelOptions options) => _options = options;

    /// <summary>Switch/GShard load-balancing loss coefficient.</summary>
    public LoadBalancingBuilder Switch(double coefficient)
    {
        _options.LoadBalancingCoef = coefficient;
        return this;
    }

    /// <summary>Router z-loss coefficient.</summary>
    public LoadBalancingBuilder ZLoss(double coefficient)
    {
        _options.ZLossCoef = coefficient;
        return this;
    }

    /// <summary>Sliding-window KL(uniform ‖ load) coefficient, window length and utilization threshold.</summary>
    public LoadBalancingBuilder WindowKl(double coefficient, int window = 100, double threshold = 0.5)
    {
        _options.UtilizationKlCoef = coefficient;
        _options.UtilizationWindow = window;
        _options.UtilizationThreshold = threshold;
        return this;
    }
}
