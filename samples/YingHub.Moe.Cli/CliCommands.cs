using System.CommandLine;

namespace YingHub.Moe.Cli;

/// <summary>
/// The <c>yinghub</c> command tree, built in one place so the program, the reference in <c>docs/cli.md</c>
/// (<see cref="CliReference"/>) and the tests all read the same definitions.
/// </summary>
internal static class CliCommands
{
    /// <summary>The program's name in the reference's usage lines (the root command's own name is the host's file name: <c>testhost</c> under a test runner).</summary>
    public const string ProgramName = "yinghub";

    /// <summary>The root command with every subcommand, plus the hidden <c>--cli-reference</c> option that prints <c>docs/cli.md</c>.</summary>
    public static RootCommand CreateRoot()
    {
        var root = new RootCommand("yinghub: build, train, sample and fine-tune sparse Mixture-of-Experts language models.")
        {
            DemoCommand.Create(),
            TrainCommand.Create(),
            EvalCommand.Create(),
            AnalyzeRoutingCommand.Create(),
            GenerateCommand.Create(),
            GenerateCommand.CreateFineTuned(),
            RlhfCommand.Create(),
            RlhfCommand.CreateBestOfN(),
            ServeCommand.Create(),
            InfoCommand.Create(),
            ExportCommand.Create(),
            ScoreCommand.Create(),
            TokenizeCommand.Create(),
            DoctorCommand.Create(),
        };
        root.Options.Add(CliReference.CreateOption());
        return root;
    }
}
