using System.CommandLine;
using System.Text.Json;
using YingHub.Moe.Core.Configuration;
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
        command.SetAction(parse => Cli.Run(() => Run(parse.GetValue(reward)!, parse.GetValue(lexicon), parse.GetValue(text), parse.GetValue(file), parse.GetValue(json))));
        return command;
    }

    private static int Run(string reward, string? lexiconPath, string? text, string? file, bool json)
    {
        string input = Cli.ReadInput(text, file);
        ShakespeareRewardOptions options;
        try
        {
            options = reward == "shakespeare" ? new ShakespeareRewardOptions()
                : File.Exists(reward) ? JsonSerializer.Deserialize<ShakespeareRewardOptions>(File.ReadAllText(reward)) ?? new ShakespeareRewardOptions()
                : throw new CliException($"--reward must be 'shakespeare' or an existing JSON file; got '{reward}'.", 2);
        }
        catch (JsonException ex)
        {
            throw new CliException($"--reward '{reward}' is not valid JSON: {ex.Message}");
        }

        options.ThrowIfInvalid("--reward");
        var scorer = new ShakespeareReward(LoadLexicon(DataFiles.Locate(lexiconPath, "cmudict.dict")), options);
        var analysis = scorer.Analyze(input);

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

    /// <summary>The lexicon at <paramref name="path"/>; a malformed line becomes one line naming the file, the line number and the line.</summary>
    private static PronunciationLexicon LoadLexicon(string path)
    {
        try
        {
            return PronunciationLexicon.Load(path);
        }
        catch (PronunciationDictionaryFormatException ex)
        {
            throw new CliException($"The pronunciation dictionary is malformed: {ex.Message}");
        }
    }
}
