using System.CommandLine;
using YingHub.Moe.Cli;

var root = CliCommands.CreateRoot();
var parsed = root.Parse(args);
if (parsed.Errors.Count > 0)
{
    // bad flags and values: one line each on standard error, and a pointer to the help, instead of the whole help text
    string help = parsed.CommandResult.Command is RootCommand ? "yinghub --help" : $"yinghub {parsed.CommandResult.Command.Name} --help";
    foreach (var error in parsed.Errors) Console.Error.WriteLine($"{Cli.OneLine(error.Message)} (see '{help}')");
    return 2;
}

return parsed.Invoke();
