using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Rl.Algorithms;
using YingHub.Moe.Training;
using YingHub.Moe.Training.Optimization;

namespace YingHub.Moe.Rl.Tests;

/// <summary>Every bad setting of <see cref="RlhfOptions"/> is refused with an error naming it, by the options and by the trainer.</summary>
public class RlhfOptionsTests
{
    /// <summary>One bad value per row: the field the error must name, and the change that breaks it.</summary>
    private static readonly (string Field, Action<RlhfOptions> Break)[] BadValues =
    [
        (nameof(RlhfOptions.Algorithm), o => o.Algorithm = (RlAlgorithm)7),
        (nameof(RlhfOptions.Iterations), o => o.Iterations = 0),
        (nameof(RlhfOptions.Iterations), o => o.Iterations = 10_000_001),
        (nameof(RlhfOptions.PromptsPerIteration), o => o.PromptsPerIteration = 0),
        (nameof(RlhfOptions.PromptsPerIteration), o => (o.PromptsPerIteration, o.MiniBatchSize) = (65_537, 1)),
        (nameof(RlhfOptions.GroupSize), o => o.GroupSize = 0),
        (nameof(RlhfOptions.GroupSize), o => o.GroupSize = 1025),
        (nameof(RlhfOptions.GroupSize), o => (o.Algorithm, o.GroupSize) = (RlAlgorithm.Grpo, 1)),
        (nameof(RlhfOptions.ResponseTokens), o => o.ResponseTokens = 0),
        (nameof(RlhfOptions.ResponseTokens), o => o.ResponseTokens = 1_000_001),
        (nameof(RlhfOptions.Temperature), o => o.Temperature = 0),
        (nameof(RlhfOptions.Temperature), o => o.Temperature = 100.5),
        (nameof(RlhfOptions.Temperature), o => o.Temperature = double.NaN),
        (nameof(RlhfOptions.Epochs), o => o.Epochs = 0),
        (nameof(RlhfOptions.Epochs), o => o.Epochs = 101),
        (nameof(RlhfOptions.MiniBatchSize), o => o.MiniBatchSize = 0),
        (nameof(RlhfOptions.MiniBatchSize), o => o.MiniBatchSize = 17),   // more than the 16 sequences of a rollout
        (nameof(RlhfOptions.LearningRate), o => o.LearningRate = 0),
        (nameof(RlhfOptions.LearningRate), o => o.LearningRate = double.PositiveInfinity),
        (nameof(RlhfOptions.ValueLearningRate), o => o.ValueLearningRate = -1e-4),
        (nameof(RlhfOptions.ValueLearningRate), o => o.ValueLearningRate = double.NaN),
        (nameof(RlhfOptions.WeightDecay), o => o.WeightDecay = -0.1),
        (nameof(RlhfOptions.WeightDecay), o => o.WeightDecay = double.NaN),
        (nameof(RlhfOptions.GradientClip), o => o.GradientClip = 0),
        (nameof(RlhfOptions.GradientClip), o => o.GradientClip = 2e6),
        (nameof(RlhfOptions.GradientClip), o => o.GradientClip = double.NaN),
        (nameof(RlhfOptions.ModuleGradientClip) + "." + nameof(GradientClipOptions.OtherMaxNorm), o => o.ModuleGradientClip = new GradientClipOptions { OtherMaxNorm = 0 }),
        (nameof(RlhfOptions.ClipRange), o => o.ClipRange = 0),
        (nameof(RlhfOptions.ClipRange), o => o.ClipRange = 1),
        (nameof(RlhfOptions.ValueClipRange), o => o.ValueClipRange = 0),
        (nameof(RlhfOptions.ValueClipRange), o => o.ValueClipRange = double.NaN),
        (nameof(RlhfOptions.ValueLossCoef), o => o.ValueLossCoef = -1),
        (nameof(RlhfOptions.ValueLossCoef), o => o.ValueLossCoef = double.PositiveInfinity),
        (nameof(RlhfOptions.EntropyCoef), o => o.EntropyCoef = -0.01),
        (nameof(RlhfOptions.Gamma), o => o.Gamma = 1.01),
        (nameof(RlhfOptions.Gamma), o => o.Gamma = -0.1),
        (nameof(RlhfOptions.Lambda), o => o.Lambda = 1.5),
        (nameof(RlhfOptions.Lambda), o => o.Lambda = double.NaN),
        (nameof(RlhfOptions.KlEstimator), o => o.KlEstimator = (KlEstimator)9),
        (nameof(RlhfOptions.KlCoef), o => o.KlCoef = -0.05),
        (nameof(RlhfOptions.KlCoef), o => o.KlCoef = double.NaN),
        (nameof(RlhfOptions.KlTarget), o => o.KlTarget = 0),
        (nameof(RlhfOptions.KlTarget), o => o.KlTarget = double.PositiveInfinity),
        (nameof(RlhfOptions.KlHorizon), o => o.KlHorizon = 0.5),
        (nameof(RlhfOptions.KlHorizon), o => o.KlHorizon = double.PositiveInfinity),
        (nameof(RlhfOptions.TargetApproxKl), o => o.TargetApproxKl = 0),
        (nameof(RlhfOptions.TargetApproxKl), o => o.TargetApproxKl = double.NaN),
        (nameof(RlhfOptions.Freeze), o => o.Freeze = ["embeddings", " "]),
        (nameof(RlhfOptions.Freeze), o => o.Freeze = null!),
        (nameof(RlhfOptions.CheckpointDirectory), o => o.CheckpointDirectory = "  "),
        (nameof(RlhfOptions.Precision), o => o.Precision = (TrainingPrecision)42),
        (nameof(RlhfOptions.SaveEvery), o => o.SaveEvery = -1),
        (nameof(RlhfOptions.EvaluationPrompts), o => o.EvaluationPrompts = -1),
        (nameof(RlhfOptions.EvaluationPrompts), o => o.EvaluationPrompts = 65_537),
    ];

    public static TheoryData<int> Rows()
    {
        var rows = new TheoryData<int>();
        for (int i = 0; i < BadValues.Length; i++) rows.Add(i);
        return rows;
    }

    [Fact]
    public void The_defaults_and_the_boundaries_are_valid()
    {
        Assert.Empty(new RlhfOptions().GetValidationErrors());
        Assert.Empty(new RlhfOptions
        {
            Algorithm = RlAlgorithm.Grpo, GroupSize = 2, Iterations = 1, PromptsPerIteration = 1, MiniBatchSize = 2, Temperature = 100, Epochs = 100,
            ValueLearningRate = null, GradientClip = null, Gamma = 0, Lambda = 1, KlCoef = 0, KlHorizon = 1, KlTarget = 1e-9, SaveEvery = 0,
            EvaluationPrompts = 0, Freeze = ["blocks:0"], CheckpointDirectory = "run",
        }.GetValidationErrors());
    }

    [Theory]
    [MemberData(nameof(Rows))]
    public void Each_bad_value_gives_one_error_naming_its_field(int row)
    {
        var (field, change) = BadValues[row];
        var options = new RlhfOptions();
        change(options);
        var errors = options.GetValidationErrors();
        // this field's error, and no neighbour's (but MiniBatchSize's when the rollout has no sequences left for it): the row tests its own check
        var fields = errors.Select(e => e.Field).Distinct().ToList();
        Assert.Contains(field, fields);
        Assert.All(fields, f => Assert.True(f == field || (f == nameof(RlhfOptions.MiniBatchSize) && options.RolloutSequences < 1), $"{f} also fails"));
        Assert.All(errors.Where(e => e.Field == field), e => Assert.StartsWith(field + " = ", e.Message, StringComparison.Ordinal));
        var thrown = Assert.Throws<ArgumentException>(() => options.ThrowIfInvalid(nameof(options)));
        Assert.Contains(field + " = ", thrown.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_trainer_refuses_bad_options_and_bad_prompts_naming_them()
    {
        var (model, tokenizer) = TinyPolicy.Create();
        using var _ = model;
        var reward = new LetterShare('e');
        var prompts = TinyPolicy.Prompts(tokenizer, 4, seed: 1);
        var good = new RlhfOptions { PromptsPerIteration = 4, MiniBatchSize = 2, ResponseTokens = 8, EvaluationPrompts = 0 };

        var bad = new RlhfOptions { PromptsPerIteration = 4, MiniBatchSize = 2, ResponseTokens = 8, ClipRange = 1.5 };
        var e = Assert.Throws<ArgumentException>(() => new RlhfTrainer(model, tokenizer, reward, prompts, bad));
        Assert.Equal("options", e.ParamName);
        Assert.Contains("ClipRange = 1.5", e.Message, StringComparison.Ordinal);

        e = Assert.Throws<ArgumentException>(() => new RlhfTrainer(model, tokenizer, reward, [], good));
        Assert.Equal("prompts", e.ParamName);
        e = Assert.Throws<ArgumentException>(() => new RlhfTrainer(model, tokenizer, reward, [.. prompts, new List<long>()], good));
        Assert.Equal("prompts", e.ParamName);
        Assert.Contains("Prompt 4", e.Message, StringComparison.Ordinal);
        // 32 context − 8 response tokens: a prompt of 25 does not fit
        var tooLong = TinyPolicy.Prompts(tokenizer, 1, seed: 3, length: model.Options.ContextLength - good.ResponseTokens + 1);
        e = Assert.Throws<ArgumentException>(() => new RlhfTrainer(model, tokenizer, reward, prompts, good, heldOutPrompts: tooLong));
        Assert.Equal("heldOutPrompts", e.ParamName);
        Assert.Contains("25 tokens", e.Message, StringComparison.Ordinal);
        using (new RlhfTrainer(model, tokenizer, reward, TinyPolicy.Prompts(tokenizer, 1, seed: 3, length: model.Options.ContextLength - good.ResponseTokens), good))
        {
            // the longest prompt that fits is accepted
        }
    }
}
