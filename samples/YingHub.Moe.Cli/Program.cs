using System.CommandLine;
using YingHub.Moe.Cli;

var root = new RootCommand("yinghub: build, train, sample and fine-tune sparse Mixture-of-Experts language models.")
{
    DemoCommand.Create(),
    TrainCommand.Create(),
    GenerateCommand.Create(),
    GenerateCommand.CreateFineTuned(),
    InfoCommand.Create(),
    ScoreCommand.Create(),
    TokenizeCommand.Create(),
    DoctorCommand.Create(),
};
return root.Parse(args).Invoke();
