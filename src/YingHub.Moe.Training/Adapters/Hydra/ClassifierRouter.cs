using TorchSharp;
using TorchSharp.Modules;
using YingHub.Moe.Core.Configuration;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Adapters.Hydra;

/// <summary>
/// Routes with a classifier trained on document embeddings and their adapter (cluster or domain) labels: multinomial
/// logistic regression, or a one-hidden-layer ReLU MLP (<see cref="ClassifierRouterOptions.HiddenSize"/>), trained
/// full-batch with Adam on cross-entropy plus an L2 penalty, from a seeded initialisation (zeros for logistic
/// regression, whose loss is convex; N(0, 1/in) weights for the MLP).
/// <para>
/// A new domain needs a new training (<see cref="Train"/>) on the embeddings of every domain, the new one included:
/// the softmax over adapters couples all output rows, so one class cannot be added alone. The adapters themselves, and
/// a <see cref="CentroidRouter"/>, are unaffected. Owns its weights.
/// </para>
/// </summary>
public sealed class ClassifierRouter : IAdapterRouter, IDisposable
{
    internal const string Kind = "classifier";
    private readonly string[] _names;
    private readonly ClassifierRouterOptions _options;
    private readonly Tensor[] _weights; // (D, H), (H) | (H, K), (K); or (D, K), (K): float32, CPU

    private ClassifierRouter(string[] names, ClassifierRouterOptions options, Tensor[] weights)
    {
        _names = names;
        _options = options;
        _weights = weights;
    }

    /// <inheritdoc />
    public IReadOnlyList<string> AdapterNames => _names;

    /// <inheritdoc />
    public int TopK => _options.TopK;

    /// <summary>The embedding size D.</summary>
    public long Dimension => _weights[0].size(0);

    /// <summary>The hidden width (0 for logistic regression).</summary>
    public int HiddenSize => _options.HiddenSize;

    /// <summary>The final training loss (cross-entropy plus penalty), for reports; NaN for a loaded router.</summary>
    public double FinalLoss { get; private init; } = double.NaN;

    /// <summary>
    /// Trains a classifier on <paramref name="embeddings"/> (N, D) with labels in [0, K) naming
    /// <paramref name="names"/> (K adapters; a class without examples is allowed and will rarely be chosen).
    /// </summary>
    /// <exception cref="ArgumentException">Invalid options, shapes, labels or names.</exception>
    public static ClassifierRouter Train(Tensor embeddings, IReadOnlyList<long> labels, IReadOnlyList<string> names, ClassifierRouterOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(embeddings);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(names);
        options ??= new ClassifierRouterOptions();
        options.ThrowIfInvalid(nameof(options));
        CheckNames(names, options);
        if (embeddings.dim() != 2 || embeddings.size(0) != labels.Count || labels.Count == 0)
            throw new ArgumentException($"Embeddings (N, D) need one label each, N ≥ 1; got shape [{string.Join(", ", embeddings.shape)}] and {labels.Count} labels.", nameof(labels));
        int bad = labels.ToList().FindIndex(l => l < 0 || l >= names.Count);
        if (bad >= 0) throw new ArgumentException($"Label {labels[bad]} (row {bad}) is outside [0, {names.Count}).", nameof(labels));
        long d = embeddings.size(1), k = names.Count, h = options.HiddenSize;
        using var generator = new Generator((ulong)options.Seed);
        Tensor[] initial = h == 0
            ? [torch.zeros(d, k), torch.zeros(k)]
            : [torch.randn([d, h], generator: generator).div_(Math.Sqrt(d)), torch.zeros(h), torch.randn([h, k], generator: generator).div_(Math.Sqrt(h)), torch.zeros(k)];
        Parameter[] parameters = initial.Select(t => new Parameter(t.DetachFromDisposeScope())).ToArray(); // outside any caller's scope
        double loss = double.NaN;
        using (var optimizer = torch.optim.Adam(parameters, options.LearningRate))
        {
            using var scope = torch.NewDisposeScope();
            var x = embeddings.detach().to(ScalarType.Float32, CPU);                            // (N, D)
            var y = torch.tensor(labels.ToArray());                                              // (N)
            for (int step = 0; step < options.Steps; step++)
            {
                using var stepScope = torch.NewDisposeScope();
                optimizer.zero_grad();
                var objective = nn.functional.cross_entropy(Forward(x, parameters.Cast<Tensor>().ToArray()), y);          // ()
                for (int w = 0; w < parameters.Length; w += 2) objective = objective + 0.5 * options.L2 * parameters[w].square().sum();
                objective.backward();
                optimizer.step();
                if (step == options.Steps - 1) loss = objective.item<float>();
            }
        }

        Tensor[] weights = parameters.Select(p => p.detach().clone().DetachFromDisposeScope()).ToArray();
        foreach (var p in parameters) p.Dispose();
        return new ClassifierRouter([.. names], Clone(options), weights) { FinalLoss = loss };
    }

    /// <inheritdoc />
    public Tensor Logits(Tensor embeddings)
    {
        AdapterRouting.CheckEmbeddings(embeddings, Dimension);
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var x = embeddings.detach().to(ScalarType.Float32, CPU);                                // (B, D)
        return (Forward(x, _weights) / _options.Temperature).MoveToOuterDisposeScope();        // (B, K)
    }

    /// <inheritdoc />
    public void Save(string path)
    {
        string[] keys = _weights.Length == 2 ? ["weight", "bias"] : ["hidden.weight", "hidden.bias", "weight", "bias"];
        var tensors = keys.Zip(_weights).ToDictionary(p => p.First, p => RouterFile.From(p.Second));
        new RouterFile(RouterFile.FormatName, RouterFile.FormatVersion, Kind, [.. _names], TopK, _options.Temperature, tensors,
            new() { ["hidden_size"] = _options.HiddenSize }).Write(path);
    }

    internal static ClassifierRouter FromFile(RouterFile file, string path)
    {
        int hidden = (int)(file.Settings?.GetValueOrDefault("hidden_size") ?? 0);
        var options = new ClassifierRouterOptions { TopK = file.TopK, Temperature = file.Temperature, HiddenSize = hidden };
        options.ThrowIfInvalid(nameof(file));
        CheckNames(file.Names, options);
        string[] keys = hidden == 0 ? ["weight", "bias"] : ["hidden.weight", "hidden.bias", "weight", "bias"];
        var weights = keys.Select(key => file.Tensor(key, path).DetachFromDisposeScope()).ToArray();
        long k = file.Names.Length;
        bool fits = hidden == 0
            ? weights[0].dim() == 2 && weights[0].size(1) == k && weights[1].shape.SequenceEqual([k])
            : weights[0].dim() == 2 && weights[0].size(1) == hidden && weights[1].shape.SequenceEqual([(long)hidden])
              && weights[2].shape.SequenceEqual([(long)hidden, k]) && weights[3].shape.SequenceEqual([k]);
        if (!fits)
        {
            foreach (var w in weights) w.Dispose();
            throw new InvalidDataException($"'{path}': the classifier's tensor shapes do not fit {k} adapters and hidden size {hidden}.");
        }

        return new ClassifierRouter(file.Names, options, weights);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var w in _weights) w.Dispose();
    }

    /// <summary>Logits (N, K) of x (N, D): x W + b, or relu(x W1 + b1) W2 + b2.</summary>
    private static Tensor Forward(Tensor x, IReadOnlyList<Tensor> w) => w.Count == 2
        ? torch.addmm(w[1], x, w[0], beta: 1, alpha: 1)                                                            // (N, K)
        : torch.addmm(w[3], nn.functional.relu(torch.addmm(w[1], x, w[0], beta: 1, alpha: 1)), w[2], beta: 1, alpha: 1);             // (N, H) -> (N, K)

    private static void CheckNames(IReadOnlyList<string> names, ClassifierRouterOptions options)
    {
        if (names.Count == 0) throw new ArgumentException("A router needs at least one adapter name.", nameof(names));
        if (names.Any(string.IsNullOrWhiteSpace)) throw new ArgumentException("Adapter names must not be blank.", nameof(names));
        if (names.Distinct(StringComparer.Ordinal).Count() != names.Count) throw new ArgumentException($"Adapter names must be distinct: {string.Join(", ", names)}.", nameof(names));
        if (options.TopK > names.Count) throw new ArgumentException($"TopK = {options.TopK} exceeds the {names.Count} adapters.", nameof(options));
    }

    private static ClassifierRouterOptions Clone(ClassifierRouterOptions o) => new()
    {
        TopK = o.TopK, Temperature = o.Temperature, HiddenSize = o.HiddenSize, Steps = o.Steps, LearningRate = o.LearningRate, L2 = o.L2, Seed = o.Seed,
    };
}
