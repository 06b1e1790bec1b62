using System.CommandLine;
using System.Text.Json;
using YingHub.Moe.Rewards;
using YingHub.Moe.Rewards.Pronunciation;

namespace YingHub.Moe.Cli;

/// <summary>
/// <c>yinghub score</c>: the Shakespeare-style reward of a text, every component, and per line the syllables, stress
/// pattern and meter fit, plus the rhyme scheme found.
/// </summary>
internal static class ScoreCommand
{
    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static Command Create()
    {
        var reward = new Option<string>("--reward") { Description = "'shakespeare' (default weights) or a JSON file of ShakespeareRewardOptions (snake_case keys).", DefaultValueFactory = _ => "shakespeare" };
        var lexicon = new Option<string?>("--lexicon") { Description = "CMU Pronouncing Dictionary file (default: cmudict.dict from $YINGHUB_DATA_DIR or ../shared/data)." };
        var text = new Option<string?>("--text") { Description = "The text to score." };
        var file = new Option<string?>("--file") { Description = "A file holding the text to score." };
        var json = new Option<bool>("--json") { Description = "End with one JSON object line: total, components, rhyme_scheme, lines." };
        var command = new Command("score", "Score a text with the Shakespeare-style reward (rhyme, meter, keywords, penalties).") { reward, lexicon, text, file, json };
        command.SetAction(parse => Run(parse.GetValue(reward)!, parse.GetValue(lexicon), parse.GetValue(text), parse.GetValue(file), parse.GetValue(json)));
        return command;
    }

    private static int Run(string reward, string? lexiconPath, string? text, string? file, bool json)
    {
        if ((text is null) == (file is null))
        {
            Console.Error.WriteLine("Give exactly one of --text TEXT or --file FILE.");
            return 2;
        }

        if (file is not null && !File.Exists(file))
        {
            Console.Error.WriteLine($"File '{file}' does not exist.");
            return 1;
        }

        ShakespeareRewardOptions options;
        try
        {
            options = reward == "shakespeare" ? new ShakespeareRewardOptions()
                : File.Exists(reward) ? JsonSerializer.Deserialize<ShakespeareRewardOptions>(File.ReadAllText(reward)) ?? new ShakespeareRewardOptions()
                : throw new ArgumentException($"--reward must be 'shakespeare' or an existing JSON file; got '{reward}'.");
            options.ThrowIfInvalid("--reward");
        }
        catch (Exception ex) when (ex is ArgumentException or JsonException)
        {
            Console.Error.WriteLine(ex.Message);
            return 1;
        }

        var (path, error) = DataFiles.Locate(lexiconPath, "cmudict.dict");
        if (path is null)
        {
            Console.Error.WriteLine(error);
            return 1;
        }

        var scorer = new ShakespeareReward(PronunciationLexicon.Load(path), options);
        var analysis = scorer.Analyze(text ?? File.ReadAllText(file!));

        Console.WriteLine($"total {analysis.Reward.Total:F3}");
        foreach (var (name, value) in analysis.Reward.Components)
            Console.WriteLine($"  {name,-20} {value:F3}{(RewardComponentNames.IsPenalty(name) ? "  (penalty)" : "")}");
        Console.WriteLine($"rhyme scheme: {analysis.RhymeScheme}");
        foreach (var line in analysis.Lines)
            Console.WriteLine($"  {line.RhymeLabel} {line.Syllables,2} syll  {line.Stress,-14} meter {line.Meter:F2}  {line.Text}");
        if (analysis.FallbackWords > 0) Console.WriteLine($"{analysis.FallbackWords} words not in the lexicon were pronounced by spelling rules.");

        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                total = analysis.Reward.Total,
                components = analysis.Reward.Components,
                rhyme_scheme = analysis.RhymeScheme,
                lines = analysis.Lines.Select(l => new { text = l.Text, syllables = l.Syllables, stress = l.Stress, meter = l.Meter, rhyme = l.RhymeLabel.ToString() }),
                fallback_words = analysis.FallbackWords,
            }, Json));
        }

        return 0;
    }
}
