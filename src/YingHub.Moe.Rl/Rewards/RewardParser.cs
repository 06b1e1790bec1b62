using System.Globalization;
using System.Text.Json;
using YingHub.Moe.Rewards;
using YingHub.Moe.Rewards.Pronunciation;

namespace YingHub.Moe.Rl.Rewards;

/// <summary>
/// Turns a reward specification (a CLI flag's value) into an <see cref="IRewardFunction"/>. A specification is one of:
/// <list type="bullet">
/// <item>a built-in name (<see cref="KnownNames"/>): <c>shakespeare</c>, <c>distinct_words</c>, <c>letter_share:e</c>, <c>length:40</c>;</item>
/// <item>inline JSON weights, an object from built-in names to numbers: <c>{"shakespeare": 1, "distinct_words": 0.2}</c>;</item>
/// <item>the path of a <c>.json</c> file holding such an object.</item>
/// </list>
/// Weights give a <see cref="WeightedReward"/> whose terms are named by their specification; a single name gives the
/// built-in itself. Names are matched case-insensitively.
/// </summary>
public static class RewardParser
{
    /// <summary>The Shakespeare-style reward (<see cref="ShakespeareReward"/>, default options); needs a pronunciation lexicon.</summary>
    public const string Shakespeare = "shakespeare";

    /// <summary>Distinct words / words (<see cref="TextRewards.DistinctWords"/>).</summary>
    public const string DistinctWords = TextRewards.DistinctWordsName;

    /// <summary>Prefix of the letter share (<see cref="TextRewards.LetterShare"/>): <c>letter_share:e</c>.</summary>
    public const string LetterShare = TextRewards.LetterShareName;

    /// <summary>Prefix of the word-count reward (<see cref="TextRewards.Length"/>): <c>length:40</c>.</summary>
    public const string Length = TextRewards.LengthName;

    /// <summary>Separates a built-in's name from its argument (<c>letter_share:e</c>).</summary>
    public const char ArgumentSeparator = ':';

    /// <summary>The built-in names, as a user writes them (arguments in angle brackets).</summary>
    public static IReadOnlyList<string> KnownNames { get; } =
        [Shakespeare, DistinctWords, $"{LetterShare}{ArgumentSeparator}<letter>", $"{Length}{ArgumentSeparator}<words>"];

    /// <summary>The reward of <paramref name="value"/> (see <see cref="RewardParser"/>).</summary>
    /// <param name="value">A built-in name, inline JSON weights, or the path of a <c>.json</c> weights file.</param>
    /// <param name="lexiconPath">A CMU-format pronunciation dictionary, needed by <see cref="Shakespeare"/>; null when not given.</param>
    /// <exception cref="ArgumentException">
    /// An unknown name (the message lists <see cref="KnownNames"/>), a bad argument, <see cref="Shakespeare"/> without a
    /// lexicon, malformed JSON, a missing weights file, or weights that are not finite numbers.
    /// </exception>
    public static IRewardFunction Parse(string value, string? lexiconPath)
    {
        ArgumentNullException.ThrowIfNull(value);
        string spec = value.Trim();
        if (spec.Length == 0) throw new ArgumentException($"The reward is empty; give one of {Known}, or JSON weights.", nameof(value));
        if (spec.StartsWith('{')) return ParseWeights(spec, "the inline weights", lexiconPath);
        if (spec.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
        {
            if (!File.Exists(spec)) throw new ArgumentException($"The reward weights file '{spec}' does not exist.", nameof(value));
            return ParseWeights(File.ReadAllText(spec), $"'{spec}'", lexiconPath);
        }

        return Builtin(spec, lexiconPath);
    }

    private static string Known => string.Join(", ", KnownNames);

    private static IRewardFunction ParseWeights(string json, string source, string? lexiconPath)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"The reward weights in {source} are not valid JSON: {e.Message}", "value", e);
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new ArgumentException($"The reward weights in {source} must be a JSON object of name → weight, e.g. {{\"{Shakespeare}\": 1, \"{DistinctWords}\": 0.2}}.", "value");
            var terms = new List<RewardTerm>();
            foreach (JsonProperty property in document.RootElement.EnumerateObject())
            {
                if (property.Value.ValueKind != JsonValueKind.Number || !property.Value.TryGetDouble(out double weight) || !double.IsFinite(weight))
                    throw new ArgumentException($"The weight of '{property.Name}' in {source} is {property.Value.GetRawText()}; weights must be finite numbers.", "value");
                string name = property.Name.Trim();
                if (terms.Any(t => string.Equals(t.Name, name, StringComparison.OrdinalIgnoreCase)))
                    throw new ArgumentException($"'{name}' appears twice in {source}.", "value");
                terms.Add(new RewardTerm(name, weight, Builtin(name, lexiconPath)));
            }

            if (terms.Count == 0) throw new ArgumentException($"The reward weights in {source} are empty; name at least one of {Known}.", "value");
            return new WeightedReward(terms);
        }
    }

    private static IRewardFunction Builtin(string spec, string? lexiconPath)
    {
        int colon = spec.IndexOf(ArgumentSeparator);
        string name = (colon < 0 ? spec : spec[..colon]).Trim().ToLowerInvariant();
        string? argument = colon < 0 ? null : spec[(colon + 1)..].Trim();
        switch (name)
        {
            case Shakespeare when argument is null:
                if (lexiconPath is null)
                    throw new ArgumentException($"The '{Shakespeare}' reward needs a pronunciation lexicon (a CMU-format dictionary such as cmudict.dict); none was given.", "lexiconPath");
                if (!File.Exists(lexiconPath)) throw new ArgumentException($"The pronunciation lexicon '{lexiconPath}' does not exist.", "lexiconPath");
                return new ShakespeareReward(PronunciationLexicon.Load(lexiconPath));
            case DistinctWords when argument is null:
                return TextRewards.DistinctWords();
            case LetterShare when argument is { Length: 1 } && char.IsLetter(argument[0]):
                return TextRewards.LetterShare(argument[0]);
            case LetterShare:
                throw new ArgumentException($"'{spec}': {LetterShare} takes one letter, e.g. '{LetterShare}{ArgumentSeparator}e'.", "value");
            case Length when int.TryParse(argument, NumberStyles.None, CultureInfo.InvariantCulture, out int words) && words >= 1:
                return TextRewards.Length(words);
            case Length:
                throw new ArgumentException($"'{spec}': {Length} takes a word count ≥ 1, e.g. '{Length}{ArgumentSeparator}40'.", "value");
            default:
                throw new ArgumentException($"Unknown reward '{spec}'; known: {Known}, or JSON weights over them (inline or a .json file).", "value");
        }
    }
}
