using System.CommandLine;
using YingHub.Moe.Cli;

var root = new RootCommand("yinghub: build, train, sample and fine-tune sparse Mixture-of-Experts language models.")
{
    DemoCommand.Create(),
    TrainCommand.Create(),
    EvalCommand.Create(),
    GenerateCommand.Create(),
    GenerateCommand.CreateFineTuned(),
    RlhfCommand.Create(),
    RlhfCommand.CreateBestOfN(),
    ServeCommand.Create(),
    InfoCommand.Create(),
    ScoreCommand.Create(),
    TokenizeCommand.Create(),
    DoctorCommand.Create(),
};
var parsed = root.Parse(args);
if (parsed.Errors.Count > 0)
{
    // bad flags and values: one line each on standard error, and a pointer to the help, instead of the whole help text
    string help = parsed.CommandResult.Command is RootCommand ? "yinghub --help" : $"yinghub {parsed.CommandResult.Command.Name} --help";
    foreach (var error in parsed.Errors) Console.Error.WriteLine($"{Cli.OneLine(error.Message)} (see '{help}')");
    return 2;
}

return parsed.Invoke();
