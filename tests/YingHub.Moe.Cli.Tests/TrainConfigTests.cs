using YingHub.Moe.Training;

namespace YingHub.Moe.Cli.Tests;

public class TrainConfigTests
{
    private static readonly TrainArguments None = new();

    [Fact]
    public void A_config_file_sets_every_key_and_flags_override_it()
    {
        var file = TrainConfig.Parse("""
            { "steps": 50, "batch": 4, "block": 32, "lr": 0.001, "preset": "makemoe", "tokenizer": "gpt2", "amp": "bf16",
              "seed": 7, "out": "runs/x", "data": "corpus.txt", "dropout": 0.2 }
            """, "run.json");
        var fromFile = TrainConfig.Merge(None, file, resume: false);
        Assert.Equal(new TrainSettings("corpus.txt", "makemoe", "gpt2", 50, 4, 32, 0.001, 7, "runs/x", false, TrainingPrecision.Bf16, null, Dropout: 0.2), fromFile);

        var flags = new TrainArguments { Steps = 9, LearningRate = 0.5, Amp = "fp16", Output = "runs/y", Dropout = 0 };
        var merged = TrainConfig.Merge(flags, file, resume: false);
        Assert.Equal(fromFile with { Steps = 9, LearningRate = 0.5, Precision = TrainingPrecision.Fp16, Output = "runs/y", Dropout = 0 }, merged);
        var resumed = TrainConfig.Merge(flags, file, resume: true);
        Assert.Equal(fromFile with { Steps = 9, LearningRate = 0.5, Precision = TrainingPrecision.Fp16, Output = "runs/y", Resume = true, Dropout = 0 }, resumed);
    }

    [Fact]
    public void Without_a_file_or_flags_the_defaults_apply()
    {
        var s = TrainConfig.Merge(None, null, resume: false);
        Assert.Equal(new TrainSettings("tinyshakespeare", "tiny", "char", 1000, 32, null, 2e-3, 1337, Path.Combine("runs", "train")), s);
        Assert.Equal(TrainingPrecision.Fp32, s.Precision);
    }

    [Fact]
    public void An_unknown_key_is_an_error_naming_it_and_the_allowed_keys()
    {
        var ex = Assert.Throws<CliException>(() => TrainConfig.Parse("""{ "steps": 5, "learning_rate": 0.1 }""", "run.json"));
        Assert.Contains("unknown key 'learning_rate'", ex.Message);
        Assert.Contains("steps, batch, block, lr, preset, tokenizer, amp, seed, out, data, init_from, dropout", ex.Message);
        Assert.Equal(2, ex.ExitCode);
    }

    [Theory]
    [InlineData("""{ "steps": "ten" }""", "'steps' must be an integer; got \"ten\"")]
    [InlineData("""{ "steps": 1.5 }""", "'steps' must be an integer; got 1.5")]
    [InlineData("""{ "lr": "fast" }""", "'lr' must be a number")]
    [InlineData("""{ "preset": 3 }""", "'preset' must be a string")]
    [InlineData("""[1, 2]""", "must hold a JSON object")]
    [InlineData("""{ "steps": 1, "steps": 2 }""", "appears twice")]
    [InlineData("""{ "steps": """, "is not valid JSON")]
    public void Malformed_files_are_one_clear_error(string json, string expected)
    {
        var ex = Assert.Throws<CliException>(() => TrainConfig.Parse(json, "run.json"));
        Assert.Contains(expected, ex.Message);
        Assert.StartsWith("--config 'run.json'", ex.Message);
    }

    [Fact]
    public void A_missing_file_is_one_clear_error()
    {
        var ex = Assert.Throws<CliException>(() => TrainConfig.Read(Path.Combine(Path.GetTempPath(), $"missing-{Guid.NewGuid():N}.json")));
        Assert.Contains("cannot be read", ex.Message);
    }

    [Theory]
    [InlineData("steps must be at least 1", 0, null, null, null)]
    [InlineData("lr must be in (0, 10]", null, -1.0, null, null)]
    [InlineData("amp 'fp8' is not one of none, bf16, fp16", null, null, "fp8", null)]
    [InlineData("preset 'huge' is not one of tiny, makemoe, yinghub-v2", null, null, null, "huge")]
    [InlineData("dropout must be in [0, 1) (got 1)", null, null, null, null, 1.0)]
    [InlineData("dropout must be in [0, 1) (got -0.1)", null, null, null, null, -0.1)]
    public void Values_out_of_range_are_refused(string expected, int? steps, double? lr, string? amp, string? preset, double? dropout = null)
    {
        var file = new TrainArguments { Steps = steps, LearningRate = lr, Amp = amp, Preset = preset, Dropout = dropout };
        var ex = Assert.Throws<CliException>(() => TrainConfig.Merge(None, file, resume: false));
        Assert.Contains(expected, ex.Message);
        Assert.Equal(2, ex.ExitCode);
    }

    [Fact]
    public void Init_from_keeps_the_checkpoints_tokenizer_unless_one_is_named_and_refuses_another_preset_or_resume()
    {
        var s = TrainConfig.Merge(new TrainArguments { InitFrom = "runs/base" }, null, resume: false);
        Assert.Equal("runs/base", s.InitFrom);
        Assert.Null(s.TokenizerKind);
        Assert.Equal("gpt2", TrainConfig.Merge(new TrainArguments { InitFrom = "runs/base", Tokenizer = "gpt2" }, null, false).TokenizerKind);
        Assert.Equal("runs/base", TrainConfig.Merge(new TrainArguments { Preset = "tiny" }, new TrainArguments { InitFrom = "runs/base" }, false).InitFrom);

        var preset = Assert.Throws<CliException>(() => TrainConfig.Merge(new TrainArguments { InitFrom = "runs/base", Preset = "makemoe" }, null, false));
        Assert.Contains("--preset makemoe cannot be combined with --init-from", preset.Message);
        var resume = Assert.Throws<CliException>(() => TrainConfig.Merge(None, TrainConfig.Parse("""{ "init_from": "runs/base" }""", "f"), resume: true));
        Assert.Contains("--resume", resume.Message);
    }

    [Fact]
    public void Dropout_is_refused_with_init_from_whose_options_come_from_the_checkpoint()
    {
        Assert.Equal(0.0, TrainConfig.Merge(new TrainArguments { Dropout = 0 }, null, false).Dropout);
        Assert.Equal(0.0, TrainConfig.Merge(new TrainArguments { Dropout = 0 }, null, resume: true).Dropout); // Trainer.Resume checks it against the run
        var ex = Assert.Throws<CliException>(() => TrainConfig.Merge(new TrainArguments { Dropout = 0, InitFrom = "runs/base" }, null, false));
        Assert.Contains("dropout sets up a new model", ex.Message);
        Assert.Equal(2, ex.ExitCode);
    }

    [Theory]
    [InlineData("none", TrainingPrecision.Fp32)]
    [InlineData("bf16", TrainingPrecision.Bf16)]
    [InlineData("fp16", TrainingPrecision.Fp16)]
    public void Amp_maps_to_the_trainers_precision(string amp, TrainingPrecision expected) =>
        Assert.Equal(expected, TrainConfig.Merge(new TrainArguments { Amp = amp }, null, false).Precision);
}
