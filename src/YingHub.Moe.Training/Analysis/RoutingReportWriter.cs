using System.Globalization;
using System.Text;
using System.Text.Json;
using YingHub.Moe.Core.Tokenizers;

namespace YingHub.Moe.Training.Analysis;

/// <summary>
/// Writes a <see cref="RoutingReport"/> into a directory, each file atomically (a temporary file renamed over the
/// target): <c>routing-report.json</c>, <c>load-heatmap.png</c>, <c>dropped-by-position.png</c>,
/// <c>specialization.png</c>, <c>early-agreement.png</c> (with an early checkpoint) and <c>top-tokens.md</c>.
/// </summary>
public static class RoutingReportWriter
{
    /// <summary>The JSON report's file name.</summary>
    public const string JsonFile = "routing-report.json";

    /// <summary>The load heatmap's file name.</summary>
    public const string LoadHeatmapFile = "load-heatmap.png";

    /// <summary>The dropped-by-position figure's file name.</summary>
    public const string DroppedFile = "dropped-by-position.png";

    /// <summary>The specialization figure's file name.</summary>
    public const string SpecializationFile = "specialization.png";

    /// <summary>The early-agreement figure's file name (only with an early checkpoint).</summary>
    public const string EarlyAgreementFile = "early-agreement.png";

    /// <summary>The top-token table's file name.</summary>
    public const string TopTokensFile = "top-tokens.md";

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    /// <summary>Writes every file of <paramref name="report"/> into <paramref name="directory"/> (created if missing) and returns their paths.</summary>
    /// <param name="directory">The output directory.</param>
    /// <param name="report">The report.</param>
    /// <param name="tokenizer">Turns token ids into text in the top-token table; null shows ids only.</param>
    public static IReadOnlyList<string> Write(string directory, RoutingReport report, ITextTokenizer? tokenizer)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(report);
        Directory.CreateDirectory(directory);
        var written = new List<string>
        {
            Atomic(directory, JsonFile, path => File.WriteAllText(path, JsonSerializer.Serialize(report, Json))),
            Atomic(directory, LoadHeatmapFile, path => RoutingPlots.SaveLoadHeatmap(path, report)),
            Atomic(directory, DroppedFile, path => RoutingPlots.SaveDroppedByPosition(path, report)),
            Atomic(directory, SpecializationFile, path => RoutingPlots.SaveSpecialization(path, report)),
        };
        if (report.Layers.All(l => l.EarlyAgreement is not null))
            written.Add(Atomic(directory, EarlyAgreementFile, path => RoutingPlots.SaveEarlyAgreement(path, report)));
        written.Add(Atomic(directory, TopTokensFile, path => File.WriteAllText(path, TopTokensMarkdown(report, tokenizer))));
        return written;
    }

    /// <summary>
    /// The top-token table as Markdown: per MoE layer, one row per expert with its load and the token ids most often
    /// routed to it (top-1), each as its text (through <paramref name="tokenizer"/>), count and share of the token's occurrences.
    /// </summary>
    public static string TopTokensMarkdown(RoutingReport report, ITextTokenizer? tokenizer)
    {
        ArgumentNullException.ThrowIfNull(report);
        var md = new StringBuilder();
        md.AppendLine("# Top tokens per expert").AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"{report.Tokens:N0} tokens in blocks of {report.BlockLength}; {report.NumExperts} experts, top-{report.TopK}.");
        md.AppendLine("Each entry: the token (as text), how often it went to the expert as its top-1 choice, and that count's share of the token's occurrences.");
        foreach (var layer in report.Layers)
        {
            md.AppendLine();
            md.AppendLine(CultureInfo.InvariantCulture, $"## Layer {layer.Layer}");
            md.AppendLine();
            md.AppendLine("| expert | load | top tokens |").AppendLine("|---:|---:|---|");
            for (int e = 0; e < report.NumExperts; e++)
            {
                string tokens = string.Join(", ", layer.TopTokens[e].Select(t =>
                    string.Create(CultureInfo.InvariantCulture, $"{Show(t.TokenId, tokenizer)} ×{t.Count} ({t.Share * 100:F0}%)")));
                md.AppendLine(CultureInfo.InvariantCulture, $"| {e} | {layer.Load[e]:F3} | {tokens} |");
            }
        }

        return md.ToString();
    }

    /// <summary>A token as inline code with whitespace made visible and the table's pipe escaped; its id when there is no tokenizer or it does not decode.</summary>
    private static string Show(long id, ITextTokenizer? tokenizer)
    {
        string? text = null;
        try
        {
            text = tokenizer?.Decode([(int)id]);
        }
        catch (ArgumentException)
        {
        }

        if (string.IsNullOrEmpty(text)) return $"#{id}";
        text = text.Replace("\n", "\\n").Replace("\t", "\\t").Replace("\r", "\\r").Replace(" ", "␣").Replace("|", "\\|").Replace("`", "'");
        return $"`{text}`";
    }

    private static string Atomic(string directory, string name, Action<string> write)
    {
        string target = Path.Combine(directory, name);
        string temp = Path.Combine(directory, $".{Path.GetFileNameWithoutExtension(name)}.{Guid.NewGuid():N}.tmp{Path.GetExtension(name)}");
        try
        {
            write(temp);
            File.Move(temp, target, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }

        return target;
    }
}
