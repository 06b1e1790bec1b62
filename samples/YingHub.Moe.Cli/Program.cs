using System.CommandLine;
using YingHub.Moe.Cli;

var root = new RootCommand("yinghub: build, train, sample and fine-tune sparse Mixture-of-Experts language models.")
{
    DemoCommand.Create(),
    DoctorCommand.Create(),
    ScoreCommand.Create(),
};
return root.Parse(args).Invoke();
