using TorchSharp;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Training.Data;

namespace YingHub.Moe.Training.Evaluation;

/// <summary>The language-modelling loss of a model on some batches.</summary>
/// <param name="Loss">Mean next-token cross-entropy (nats per token) over the batches.</param>
/// <param name="Perplexity">exp(<paramref name="Loss"/>).</param>
/// <param name="Tokens">Predicted tokens: batches × batch size × block size.</param>
/// <param name="Batches">Batches evaluated.</param>
public sealed record LossEvaluation(double Loss, double Perplexity, long Tokens, int Batches);

/// <summary>
/// Measures a model's LM loss and perplexity on blocks of a token corpus (e.g. the held-out part of
/// <see cref="BlockSampler.Split"/>): evaluation mode, no gradients, every batch in its own dispose scope. All batches
/// hold the same number of tokens, so the mean of the batch means is the mean over tokens.
/// </summary>
public static class LossEvaluator
{
    /// <summary>Evaluates <paramref name="model"/> on <paramref name="batches"/> batches of <paramref name="batchSize"/> blocks drawn from <paramref name="sampler"/>.</summary>
    /// <param name="model">The model.</param>
    /// <param name="sampler">Where the blocks come from (it advances).</param>
    /// <param name="batches">Batches to average, &gt;= 1.</param>
    /// <param name="batchSize">Blocks per batch, &gt;= 1.</param>
    /// <param name="precision">The forward passes' arithmetic: fp32, or bf16/fp16 autocast over the float32 weights (as the run trains).</param>
    /// <remarks>The model's training mode is restored afterwards.</remarks>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="batches"/> or <paramref name="batchSize"/> is below 1.</exception>
    /// <exception cref="ArgumentException">The sampler's blocks are longer than the model's context.</exception>
    public static LossEvaluation Evaluate(MoeForCausalLM model, BlockSampler sampler, int batches, int batchSize, TrainingPrecision precision = TrainingPrecision.Fp32)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(sampler);
        ArgumentOutOfRangeException.ThrowIfLessThan(batches, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        if (sampler.BlockSize > model.Options.ContextLength)
            throw new ArgumentException($"Blocks of {sampler.BlockSize} tokens exceed the model's context length {model.Options.ContextLength}.", nameof(sampler));

        bool wasTraining = model.training;
        model.eval();
        double sum = 0;
        try
        {
            using (torch.no_grad())
            using (Autocast(precision))
            {
                for (int i = 0; i < batches; i++)
                {
                    using var scope = torch.NewDisposeScope();
                    var (x, y) = sampler.Next(batchSize, model.Device);                                       // (B, T), (B, T)
                    sum += model.call(new CausalLMInput(x, y, RouterStatistics: false)).LmLoss!.item<float>();
                }
            }
        }
        finally
        {
            if (wasTraining) model.train();
        }

        double loss = sum / batches;
        return new LossEvaluation(loss, Math.Exp(loss), (long)batches * batchSize * sampler.BlockSize, batches);
    }

    /// <summary>The autocast scope of <paramref name="precision"/>, or null for fp32.</summary>
    internal static IDisposable? Autocast(TrainingPrecision precision) => precision switch
    {
        TrainingPrecision.Bf16 => Core.Precision.Autocast.Enable(torch.ScalarType.BFloat16),
        TrainingPrecision.Fp16 => Core.Precision.Autocast.Enable(torch.ScalarType.Float16),
        TrainingPrecision.Fp32 => null,
        _ => throw new ArgumentException($"precision = {precision} is not a TrainingPrecision.", nameof(precision)),
    };
}
