using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Training.Adapters.Hydra;

/// <summary>Settings of a <see cref="ClassifierRouter"/> and of its training.</summary>
public sealed class ClassifierRouterOptions : IValidatableOptions
{
    /// <summary>Adapters per selection (weights: softmax of the k best logits / <see cref="Temperature"/>); [1, 1024] and at most the number of adapters.</summary>
    public int TopK { get; set; } = 1;

    /// <summary>The routing logits are the classifier's logits / <see cref="Temperature"/>; finite and &gt; 0.</summary>
    public double Temperature { get; set; } = 1;

    /// <summary>0: multinomial logistic regression (one linear layer); &gt; 0: a one-hidden-layer MLP (ReLU) of this width; [0, 65536].</summary>
    public int HiddenSize { get; set; }

    /// <summary>Full-batch Adam steps; [1, 1000000].</summary>
    public int Steps { get; set; } = 300;

    /// <summary>Adam's learning rate; finite and &gt; 0.</summary>
    public double LearningRate { get; set; } = 0.05;

    /// <summary>L2 penalty λ: the loss is mean cross-entropy + (λ / 2) · Σ‖W‖² over the weight matrices (not the biases); finite and ≥ 0.</summary>
    public double L2 { get; set; } = 1e-4;

    /// <summary>Seed of the weight initialisation; any value.</summary>
    public long Seed { get; set; }

    /// <summary>Every problem, naming the field, its value and the allowed range.</summary>
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        errors.Require(TopK is >= 1 and <= 1024, nameof(TopK), TopK, "[1, 1024]");
        errors.Require(double.IsFinite(Temperature) && Temperature > 0, nameof(Temperature), Temperature, "finite and > 0");
        errors.Require(HiddenSize is >= 0 and <= 65536, nameof(HiddenSize), HiddenSize, "[0, 65536]");
        errors.Require(Steps is >= 1 and <= 1_000_000, nameof(Steps), Steps, "[1, 1000000]");
        errors.Require(double.IsFinite(LearningRate) && LearningRate > 0, nameof(LearningRate), LearningRate, "finite and > 0");
        errors.Require(double.IsFinite(L2) && L2 >= 0, nameof(L2), L2, "finite and >= 0");
        return errors;
    }
}
