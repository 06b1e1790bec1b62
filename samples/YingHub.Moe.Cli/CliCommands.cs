using System.CommandLine;

namespace YingHub.Moe.Cli;

/// <summary>
/// The <c>yinghub</c> command tree, built in one place so the program and the tests read the same definitions.
/// </summary>
internal static class CliCommands
{
    /// <summary>The root command with every subcommand.</summary>
    public static RootCommand CreateRoot()
    {
        return new RootCommand("yinghub: build, train, sample and fine-tune sparse Mixture-of-Experts language models.")
        {
            DemoCommand.Create(),
            TrainCommand.Create(),
            EvalCommand.Create(),
            GenerateCommand.Create(),
            GenerateCommand.CreateFineTuned(),
            RlhfCommand.Create(),
            RlhfCommand.CreateBestOfN(),
            InfoCommand.Create(),
            ScoreCommand.Create(),
            TokenizeCommand.Create(),
            DoctorCommand.Create(),
        };
    }
}
