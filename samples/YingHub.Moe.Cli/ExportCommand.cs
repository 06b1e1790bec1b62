using System.CommandLine;
using YingHub.Moe.Core.Interop;

namespace YingHub.Moe.Cli;

/// <summary><c>yinghub export</c>: a checkpoint as a Hugging Face model directory (<see cref="MixtralExport"/>).</summary>
internal static class ExportCommand
{
    public static Command Create()
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "Checkpoint directory to export (a mixtral-preset model, or any model the Mixtral layout can express).", Required = true };
        var format = new Option<string>("--format") { Description = "Output format: hf-mixtral (Hugging Face MixtralForCausalLM: config.json, safetensors, tokenizer.json).", DefaultValueFactory = _ => MixtralExport.FormatName };
        format.AcceptOnlyFromAmong(MixtralExport.FormatName);
        var output = new Option<string>("--out") { Description = "Output directory (created or replaced).", Required = true };
        var maxShard = new Option<string>("--max-shard-size") { Description = "Largest safetensors file, e.g. 5GB, 500MB, 2GiB; above it the weights are sharded with model.safetensors.index.json.", DefaultValueFactory = _ => "5GB" };
        var command = new Command("export", "Export a checkpoint to another ecosystem's layout (Hugging Face Mixtral: Transformers, vLLM, DeepSpeed, Megatron-LM converters).")
        {
            checkpoint, format, output, maxShard,
        };
        command.SetAction(parse => Cli.Run(() => Run(parse.GetValue(checkpoint)!, parse.GetValue(output)!, parse.GetValue(maxShard)!)));
        return command;
    }

    private static int Run(string checkpoint, string output, string maxShardSize)
    {
        long maxShard;
        try
        {
            maxShard = MixtralExport.ParseSize(maxShardSize);
        }
        catch (FormatException ex)
        {
            throw new CliException($"--max-shard-size: {ex.Message}", 2);
        }

        if (!Directory.Exists(checkpoint)) throw new CliException($"Checkpoint directory '{checkpoint}' does not exist.");
        if (Path.GetFullPath(checkpoint).TrimEnd('/') == Path.GetFullPath(output).TrimEnd('/'))
            throw new CliException("--out must differ from --checkpoint (the export replaces its output directory).", 2);
        Cli.RequireTorch();
        MixtralExportResult result;
        try
        {
            result = MixtralExport.FromCheckpoint(checkpoint, output, maxShard);
        }
        catch (Exception ex) when (ex is IOException or InvalidDataException or ArgumentException or UnauthorizedAccessException)
        {
            throw new CliException($"Checkpoint '{checkpoint}': {Cli.MessageOf(ex)}");
        }

        Console.WriteLine($"exported {checkpoint} as {MixtralExport.FormatName} to {output}: {string.Join(", ", result.Files)}");
        foreach (string note in result.Notes) Console.Error.WriteLine($"note: {note}");
        return 0;
    }
}
