using System.Runtime.InteropServices;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Optimization;

/// <summary>
/// TorchSharp's <see cref="AdamW"/> (same groups, options, state and <c>save_state_dict</c> format), whose step runs
/// libtorch's fused multi-tensor AdamW kernel (<c>torch._fused_adamw_</c>, what PyTorch's <c>AdamW(fused=True)</c>
/// calls) once per parameter group instead of about ten element-wise ops per parameter.
/// </summary>
/// <remarks>
/// An AdamW step is bound by memory traffic: TorchSharp's per-parameter step reads and writes the parameters and both
/// moments about twenty times over (and allocates two temporaries per parameter); the fused kernel does it in one pass.
/// TorchSharp has no binding for the kernel, so it is reached through a TorchScript function compiled once per
/// process. The update is the same algorithm (decoupled decay <c>p ← p(1 − lr·wd)</c>, bias-corrected moments,
/// <c>eps</c> outside the square root); results agree with <see cref="AdamW"/> to float rounding (tested). Parameters
/// whose gradient is null are skipped, as in <see cref="AdamW"/>. AMSGrad and non-contiguous parameters fall back to
/// <see cref="AdamW"/>'s own step.
/// The CPU kernel exists since libtorch 2.4 (this library is built against 2.10). TorchScript compiles a function's
/// body at its first call, where an unknown op ends the process instead of throwing, so the script is exercised by the
/// tests against the libtorch the package depends on.
/// </remarks>
public sealed class FusedAdamW : AdamW
{
    private const string Script = """
        def fused_adamw(params: List[Tensor], grads: List[Tensor], exp_avgs: List[Tensor], exp_avg_sqs: List[Tensor], steps: List[Tensor], lr: float, beta1: float, beta2: float, weight_decay: float, eps: float, maximize: bool) -> int:
            torch._fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, [], steps, lr=lr, beta1=beta1, beta2=beta2, weight_decay=weight_decay, eps=eps, amsgrad=False, maximize=maximize)
            return 0

        """; // the TorchScript parser needs the final newline

    private static readonly Lazy<jit.CompilationUnit> Kernel = new(() => jit.compile(Script), LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>An AdamW over <paramref name="groups"/>; the arguments are those of <see cref="AdamW"/>.</summary>
    public FusedAdamW(IEnumerable<ParamGroup> groups, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weight_decay = 0, bool amsgrad = false, bool maximize = false)
        : base(groups, lr, beta1, beta2, eps, weight_decay, amsgrad, maximize)
    {
    }

    /// <summary>Whether the fused kernel is available in this process (compiles it on first use).</summary>
    public static bool IsSupported
    {
        get
        {
            try
            {
                _ = Kernel.Value;
                return true;
            }
            catch (Exception ex) when (ex is ExternalException or InvalidOperationException)
            {
                return false;
            }
        }
    }

    /// <inheritdoc />
    public override Tensor step(Func<Tensor>? closure = null)
    {
        // the kernel walks each tensor's memory in order: parameters laid out otherwise (and AMSGrad) take AdamW's own step
        if (ParamGroups.Cast<ParamGroup>().Any(g => g.Options.amsgrad == true || g.Parameters.Any(p => !p.is_contiguous()))) return base.step(closure);
        return _step<ParamGroup>(group =>
        {
            var o = group.Options;
            var parameters = new List<Tensor>();
            var grads = new List<Tensor>();
            var expAvgs = new List<Tensor>();
            var expAvgSqs = new List<Tensor>();
            var stepNumbers = new List<float>();
            foreach (Parameter p in group.Parameters)
            {
                if (p.grad is not { } grad) continue; // a wrapper owned by _step's dispose scope
                var state = (State)_state[p.Handle];
                parameters.Add(p);
                grads.Add(grad.is_contiguous() ? grad : grad.contiguous());
                expAvgs.Add(state.exp_avg);
                expAvgSqs.Add(state.exp_avg_sq);
                stepNumbers.Add(state.step + 1); // the step being taken, as the kernel's float32 step tensors hold it
            }

            if (parameters.Count == 0) return;
            // the kernel takes one step tensor per parameter: views of one tensor made from State.step, the only counter kept
            var steps = torch.tensor(stepNumbers.ToArray(), ScalarType.Float32, parameters[0].device).unbind(0);
            // Scalars we hold until the call returns: a double argument would become a temporary Scalar that the GC may
            // finalize (freeing its native value) before TorchSharp's invoke reads it
            using Scalar lr = o.LearningRate!.Value.ToScalar(), beta1 = o.beta1!.Value.ToScalar(), beta2 = o.beta2!.Value.ToScalar(),
                decay = o.weight_decay!.Value.ToScalar(), eps = o.eps!.Value.ToScalar();
            Kernel.Value.invoke("fused_adamw", parameters.ToArray(), grads.ToArray(), expAvgs.ToArray(), expAvgSqs.ToArray(), steps,
                lr, beta1, beta2, decay, eps, o.maximize ?? false);
            foreach (Parameter p in parameters.Cast<Parameter>()) ((State)_state[p.Handle]).step++; // after the kernel ran
        }, closure);
    }
}
