using TorchSharp;
using TorchSharp.Modules;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Precision;
using YingHub.Moe.Core.Quantization;
using YingHub.Moe.Training.Schedules;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Optimization;

/// <summary>Settings of <see cref="OptimizerStep"/>; <see cref="FromTrainerOptions"/> derives them from a <see cref="TrainerOptions"/>.</summary>
public sealed class OptimizerStepOptions : IValidatableOptions
{
    /// <summary>AdamW hyperparameters and the parameter-group rules (weight decay, router learning-rate multiplier).</summary>
    public AdamWGroupOptions AdamW { get; set; } = new();

    /// <summary>The learning rate over 0-based optimizer steps, applied to every group (times its multiplier) before each step.</summary>
    public ILearningRateSchedule Schedule { get; set; } = new ConstantSchedule(1e-3);

    /// <summary>Micro-batches per optimizer step; each micro-batch loss is divided by it, [1, 4,096].</summary>
    public int GradientAccumulation { get; set; } = 1;

    /// <summary>Maximum global gradient norm, (0, 1e6], or null for none.</summary>
    public double? GradientClip { get; set; } = 1.0;

    /// <summary>A global clip norm over training progress (0..1 of <see cref="TotalSteps"/>), overriding <see cref="GradientClip"/>.</summary>
    public PiecewiseLinearSchedule? GradientClipSchedule { get; set; }

    /// <summary>The run's length, for <see cref="GradientClipSchedule"/>'s progress; &gt;= 1.</summary>
    public long TotalSteps { get; set; } = 1;

    /// <summary>Per-module clipping before the global clip; null: no per-module limit (the group norms are still measured).</summary>
    public GradientClipOptions? ModuleGradientClip { get; set; }

    /// <summary>Arithmetic of the forward and backward passes run inside <see cref="OptimizerStep.Step"/>.</summary>
    public TrainingPrecision Precision { get; set; } = TrainingPrecision.Fp32;

    /// <summary>Loss scaling of fp16 steps (ignored otherwise); null uses the defaults.</summary>
    public DynamicLossScalerOptions? LossScaling { get; set; }

    /// <summary>The settings a <see cref="Trainer"/> with <paramref name="options"/> uses.</summary>
    public static OptimizerStepOptions FromTrainerOptions(TrainerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new OptimizerStepOptions
        {
            AdamW = new AdamWGroupOptions
            {
                LearningRate = options.LearningRate, Beta1 = options.Beta1, Beta2 = options.Beta2, WeightDecay = options.WeightDecay,
                RouterLearningRateMultiplier = options.RouterLearningRateMultiplier, Fused = options.FusedAdamW,
            },
            Schedule = options.CreateSchedule(), GradientAccumulation = options.GradientAccumulation, GradientClip = options.GradientClip,
            GradientClipSchedule = options.GradientClipSchedule, TotalSteps = options.Steps, ModuleGradientClip = options.ModuleGradientClip,
            Precision = options.Precision, LossScaling = options.LossScaling,
        };
    }

    /// <summary>
    /// Every problem, naming the field, its value and the allowed range; <see cref="AdamW"/>'s and
    /// <see cref="ModuleGradientClip"/>'s under their property names, and <see cref="LossScaling"/>'s in fp16, where it is used.
    /// </summary>
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        errors.Require(AdamW is not null, nameof(AdamW), null, "AdamW group options");
        errors.AddNested(nameof(AdamW), AdamW);
        errors.Require(Schedule is not null, nameof(Schedule), null, "a learning-rate schedule");
        errors.Require(GradientAccumulation is >= 1 and <= 4096, nameof(GradientAccumulation), GradientAccumulation, "[1, 4096]");
        errors.Require(GradientClip is not { } clip || (clip > 0 && clip <= 1e6), nameof(GradientClip), GradientClip, "(0, 1000000] or null");
        errors.Require(TotalSteps >= 1, nameof(TotalSteps), TotalSteps, ">= 1");
        errors.AddNested(nameof(ModuleGradientClip), ModuleGradientClip);
        errors.Require(Enum.IsDefined(Precision), nameof(Precision), Precision, string.Join(", ", Enum.GetNames<TrainingPrecision>()));
        if (Precision == TrainingPrecision.Fp16) errors.AddNested(nameof(LossScaling), LossScaling);
        return errors;
    }
}

/// <summary>The outcome of one <see cref="OptimizerStep.Step"/>.</summary>
/// <param name="LearningRate">The base learning rate the step used.</param>
/// <param name="Norms">
/// The pre-clip gradient norms, float32 (labels in <see cref="OptimizerStep.NormLabels"/>), NaN when the step was skipped;
/// in the caller's dispose scope. Read it (a host sync) only when logging.
/// </param>
/// <param name="Taken">False when fp16 gradients overflowed and the step was skipped.</param>
public sealed record OptimizerStepResult(double LearningRate, Tensor Norms, bool Taken);

/// <summary>
/// One optimizer step of any loop (pre-training, fine-tuning, PPO, UL2): set the learning rate from the schedule
/// (<see cref="LearningRateApplier"/>), run the caller's loss for each micro-batch (under autocast in bf16/fp16) and
/// backpropagate it divided by the accumulation count (times the loss scale in fp16), unscale, clip per module then
/// globally (<see cref="GroupedGradientClipper"/>), step <see cref="GroupedAdamW"/> (frozen parameters,
/// <c>requires_grad = false</c>, get no state and no decay), and set every gradient to none.
/// <para>
/// Owns the optimizer, the clipper and the loss scaler; <see cref="SaveState"/>/<see cref="LoadState"/> move the
/// optimizer state (the scaler's is <see cref="LossScaler"/>'s <c>State</c>).
/// </para>
/// </summary>
public sealed class OptimizerStep : IDisposable
{
    private readonly OptimizerStepOptions _options;
    private readonly GroupedAdamW _grouped;
    private readonly GroupedGradientClipper _clipper;
    private readonly LearningRateApplier _learningRate;
    private readonly ScalarType? _autocast;
    private readonly Parameter[] _parameters;

    /// <summary>An optimizer step over <paramref name="model"/>'s trainable parameters.</summary>
    /// <exception cref="ArgumentException">Invalid options, or no trainable parameter.</exception>
    /// <exception cref="InvalidOperationException">The model is quantized (<see cref="ModelQuantization"/>): a quantized base is frozen.</exception>
    public OptimizerStep(nn.Module model, OptimizerStepOptions options)
        : this(TrainableBase(model).named_parameters(), options)
    {
    }

    private static nn.Module TrainableBase(nn.Module? model)
    {
        ArgumentNullException.ThrowIfNull(model);
        ModelQuantization.ThrowIfQuantized(model, "build an optimizer step over the model's parameters");
        return model;
    }

    /// <summary>
    /// An optimizer step over the trainable ones among <paramref name="parameters"/> (names as <c>named_parameters()</c>
    /// gives them; the group and clipping rules match on them), e.g. a policy's and its value head's together.
    /// </summary>
    /// <exception cref="ArgumentException">Invalid options, or no trainable parameter.</exception>
    public OptimizerStep(IEnumerable<(string name, Parameter parameter)> parameters, OptimizerStepOptions options)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(options);
        var named = parameters.ToArray();
        ArgumentNullException.ThrowIfNull(options.Schedule);
        options.ThrowIfInvalid(nameof(options));
        _autocast = options.Precision switch
        {
            TrainingPrecision.Bf16 => ScalarType.BFloat16,
            TrainingPrecision.Fp16 => ScalarType.Float16,
            _ => null,
        };
        if (_autocast is not null && named.FirstOrDefault(p => p.parameter.dtype != ScalarType.Float32) is { parameter: { } low })
            throw new ArgumentException($"Precision = {options.Precision} needs float32 master weights; the model holds {low.dtype} parameters.", nameof(parameters));

        _options = options;
        _parameters = named.Select(p => p.parameter).DistinctBy(p => p.Handle).ToArray(); // a tied weight is listed under each name
        _grouped = GroupedAdamW.Create(named, options.AdamW);
        _clipper = new GroupedGradientClipper(named, options.ModuleGradientClip ?? Unlimited());
        _learningRate = new LearningRateApplier(_grouped.Optimizer, options.Schedule, _grouped.LearningRateMultipliers);
        if (options.Precision == TrainingPrecision.Fp16) LossScaler = new DynamicLossScaler(options.LossScaling);
    }

    private static GradientClipOptions Unlimited()
    {
        var limits = new GradientClipOptions { OtherMaxNorm = double.PositiveInfinity };
        foreach (var group in limits.Groups) group.MaxNorm = double.PositiveInfinity;
        return limits;
    }

    /// <summary>The grouped AdamW (groups, fused or not).</summary>
    public GroupedAdamW Optimizer => _grouped;

    /// <summary>The fp16 loss scaler (null in other precisions).</summary>
    public DynamicLossScaler? LossScaler { get; }

    /// <summary>Labels of <see cref="OptimizerStepResult.Norms"/>: global, each clip group, global after the group clips.</summary>
    public IReadOnlyList<string> NormLabels => _clipper.NormLabels;

    /// <summary>The autocast dtype of the forward passes (null in fp32).</summary>
    public ScalarType? AutocastType => _autocast;

    /// <summary>The global clip norm at 0-based <paramref name="step"/> (+infinity when there is none).</summary>
    public double GlobalClipAt(long step) =>
        _options.GradientClipSchedule?.AtStep(step, _options.TotalSteps) ?? _options.GradientClip ?? double.PositiveInfinity;

    /// <summary>
    /// Takes optimizer step <paramref name="step"/> (0-based: the steps done before it). <paramref name="microBatchLoss"/>
    /// is called with 0 .. GradientAccumulation − 1 and returns that micro-batch's scalar loss (a mean over its tokens);
    /// it runs under the precision's autocast, in the caller's dispose scope, so what it captures stays readable.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="step"/> is negative.</exception>
    public OptimizerStepResult Step(long step, Func<int, Tensor> microBatchLoss)
    {
        ArgumentNullException.ThrowIfNull(microBatchLoss);
        if (step < 0) throw new ArgumentException($"step = {step} is invalid; allowed: >= 0.", nameof(step));
        double lr = _learningRate.Apply(step);
        GradientReset.SetGradientsToNone(_parameters);
        for (int micro = 0; micro < _options.GradientAccumulation; micro++)
        {
            Tensor loss;
            using (_autocast is { } dtype ? Autocast.Enable(dtype) : null) loss = microBatchLoss(micro);
            var scaled = loss / _options.GradientAccumulation;
            (LossScaler is null ? scaled : LossScaler.ScaleLoss(scaled)).backward();
        }

        bool finite = LossScaler?.UnscaleGradients(_parameters) ?? true;
        Tensor norms;
        if (finite)
        {
            norms = _clipper.ClipGradients(GlobalClipAt(step)); // per module, then global
            _grouped.Optimizer.step();
        }
        else
        {
            norms = torch.full(_clipper.NormLabels.Count, float.NaN);
        }

        LossScaler?.Update(finite);
        GradientReset.SetGradientsToNone(_parameters);
        return new OptimizerStepResult(lr, norms, finite);
    }

    /// <summary>Writes the optimizer state (see <see cref="GroupedAdamW.SaveState"/>).</summary>
    public void SaveState(string path) => _grouped.SaveState(path);

    /// <summary>Loads an optimizer state written by <see cref="SaveState"/> over the same trainable parameters.</summary>
    public void LoadState(string path) => _grouped.LoadState(path);

    /// <inheritdoc />
    public void Dispose()
    {
        _clipper.Dispose();
        _grouped.Dispose();
    }
}
