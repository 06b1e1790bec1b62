// Quickstart: build a sparse MoE model with the fluent builder, train it briefly on a text file, generate from it.
// Usage: dotnet run -c Release --project samples/Quickstart -- [corpus.txt] [steps]
using TorchSharp;
using YingHub.Moe.Building;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Generation;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Training.Data;

string corpusPath = args.Length > 0 ? args[0] : Path.Combine("..", "shared", "data", "tinyshakespeare.txt");
int steps = args.Length > 1 ? int.Parse(args[1]) : 300;
var tokenizer = CharTokenizer.FromCorpus(File.ReadAllText(corpusPath));
using var corpus = TokenCorpus.Open(corpusPath, tokenizer);               // tokenized once, cached, memory-mapped
var (train, validation) = BlockSampler.Split(corpus, blockSize: 64, seed: 1);

torch.manual_seed(1);
using var model = MoeModelBuilder.Create()
    .Vocabulary(tokenizer.VocabSize).Context(64).Embedding(128).Heads(4).Layers(4)
    .Experts(e => e.Count(4).TopK(2).Activation(ExpertActivation.Gelu))
    .LoadBalancing(lb => lb.Switch(0.01).ZLoss(0.001))
    .Build();
Console.WriteLine($"{model.ParameterCount:N0} parameters, {model.ActiveParameterCount:N0} active per token");

using var optimizer = torch.optim.AdamW(model.parameters(), lr: 2e-3);
for (int step = 1; step <= steps; step++)
{
    using var scope = torch.NewDisposeScope();                          // every step's tensors are freed here
    var (x, y) = train.Next(batchSize: 32);
    using var output = model.call(new CausalLMInput(x, y));
    optimizer.zero_grad();
    output.Loss!.backward();                                            // LM loss + load-balancing + z-loss
    optimizer.step();
    if (step % 50 == 0) Console.WriteLine($"step {step}: loss {output.LmLoss!.item<float>():F3}, balance {output.LoadBalancingLoss.item<float>():F3}");
}

var generator = new TextGenerator(model, tokenizer);
await foreach (string piece in generator.StreamAsync("ROMEO:", new SamplingOptions { MaxNewTokens = 200, Temperature = 0.8, TopK = 20 }))
    Console.Write(piece);
Console.WriteLine();
