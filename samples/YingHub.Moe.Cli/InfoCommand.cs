using System.CommandLine;
using System.Text.Json;

namespace YingHub.Moe.Cli;

/// <summary><c>yinghub info</c>: a checkpoint's options, parameter counts and tokenizer.</summary>
internal static class InfoCommand
{
    public static Command Create()
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "Checkpoint directory, or a Hugging Face Mixtral directory.", Required = true };
        var command = new Command("info", "Show a checkpoint's architecture, parameter counts and tokenizer.") { checkpoint };
        command.SetAction(parse => Cli.Run(() => Run(parse.GetValue(checkpoint)!)));
        return command;
    }

    private static int Run(string checkpoint)
    {
        Cli.RequireTorch();
        var (model, tokenizer) = CheckpointLoader.Load(checkpoint);

        using (model)
        {
            var o = model.Options;
            Console.WriteLine($"checkpoint: {Path.GetFullPath(checkpoint)}");
            Console.WriteLine($"tokenizer:  {tokenizer.Name}, {tokenizer.VocabSize:N0} tokens");
            Console.WriteLine($"model:      {o.NumLayers} layers, width {o.HiddenSize}, {o.NumHeads} heads{(o.KeyValueHeads == o.NumHeads ? "" : $" ({o.KeyValueHeads} key/value)")}, context {o.ContextLength}, {o.Positions} positions, {o.Norm}");
            Console.WriteLine($"experts:    {o.NumExperts} per MoE layer ({o.DeepExperts} deep), top-{o.TopK} {o.Router}, {o.Activation}, MoE every {o.MoeEvery} layer(s){(o.SharedExpert ? ", shared expert" : "")}{(o.CapacityFactor is { } cf ? $", capacity factor {cf}" : ", dropless")}");
            Console.WriteLine($"parameters: {model.ParameterCount:N0} total, {model.ActiveParameterCount:N0} active per token");
            Console.WriteLine("options:");
            Console.WriteLine(JsonSerializer.Serialize(o, new JsonSerializerOptions { WriteIndented = true }));
            return 0;
        }
    }
}
