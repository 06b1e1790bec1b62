using System.CommandLine;
using System.Globalization;
using System.Text.RegularExpressions;

namespace YingHub.Moe.Cli.Tests;

/// <summary>
/// <c>docs/cli.md</c> against the program: the file is what the commands generate, every option the real
/// <c>yinghub &lt;command&gt; --help</c> prints is in its command's table, and every example command in the README
/// parses. The generator itself is checked on a small hand-built command whose Markdown is written out here.
/// </summary>
public sealed class CliReferenceTests
{
    // ---- docs/cli.md is the generator's output for the real commands ----

    [Fact]
    public void Docs_cli_md_is_what_the_commands_generate()
    {
        // the documented way to regenerate, through the real entry point
        var result = CliRunner.Run(CliReference.OptionName);
        Assert.True(result.ExitCode == 0 && result.Err.Length == 0, result.ToString());
        string[] generated = Lines(result.Out);
        string[] file = Lines(File.ReadAllText(RepositoryFile(CliReference.DocumentPath)));
        int line = Enumerable.Range(0, Math.Max(generated.Length, file.Length))
            .FirstOrDefault(i => i >= generated.Length || i >= file.Length || generated[i] != file[i], -1);
        if (line >= 0)
        {
            Assert.Fail($"{CliReference.DocumentPath} is out of date with the commands' definitions; first difference at line {line + 1}:\n"
                + $"  file:     {(line < file.Length ? file[line] : "(end of file)")}\n"
                + $"  commands: {(line < generated.Length ? generated[line] : "(end of output)")}\n"
                + $"Regenerate it from the repository root: {CliReference.RegenerateCommandLine}");
        }

        // the same file whatever the machine's culture (descriptions format numbers: 0.002, never 0,002)
        var saved = CultureInfo.CurrentCulture;
        CultureInfo.CurrentCulture = CultureInfo.GetCultureInfo("de-DE");
        try
        {
            Assert.Equal(result.Out, CliReference.Generate());
            Assert.Equal("de-DE", CultureInfo.CurrentCulture.Name);
        }
        finally
        {
            CultureInfo.CurrentCulture = saved;
        }
    }

    [Fact]
    public void Paths_in_the_reference_use_forward_slashes_whatever_the_platform()
    {
        Assert.Equal("runs/rlhf and a/b", CliReference.Portable(@"runs\rlhf and a\b", '\\'));
        Assert.Equal(@"a\b/c", CliReference.Portable(@"a\b/c", '/'));
    }

    [Fact]
    public void The_reference_option_is_hidden_from_the_help()
    {
        var help = CliRunner.Run("--help");
        Assert.Equal(0, help.ExitCode);
        Assert.Contains("train", help.Out);
        Assert.DoesNotContain(CliReference.OptionName, help.Out);
        Assert.DoesNotContain(CliReference.OptionName, File.ReadAllText(RepositoryFile(CliReference.DocumentPath)).Split("## yinghub\n")[1]);
    }

    // ---- every option of every command's --help is in docs/cli.md ----

    [Fact]
    public void Every_option_in_each_commands_help_is_in_its_section_of_docs_cli_md()
    {
        var sections = DocSections(File.ReadAllText(RepositoryFile(CliReference.DocumentPath)));
        var rootHelp = CliRunner.Run("--help");
        string[] commands = HelpSection(rootHelp.Out, "Commands:").Select(first => first.Split(' ')[0]).ToArray();
        Assert.Contains("train", commands);
        Assert.Equal(["yinghub", .. commands.Select(c => $"yinghub {c}")], sections.Keys.ToArray()); // no section of a command that is gone

        foreach (string command in commands.Prepend(""))
        {
            string heading = command.Length == 0 ? "yinghub" : $"yinghub {command}";
            var help = command.Length == 0 ? rootHelp : CliRunner.Run(command, "--help");
            Assert.True(help.ExitCode == 0, help.ToString());
            string[] options = HelpSection(help.Out, "Options:");
            Assert.NotEmpty(options);
            foreach (string first in options)
            {
                // "-?, -h, --help" or "--checkpoint <checkpoint> (REQUIRED)": the names, and whether it is required
                string[] names = first.Split(", ").Select(part => part.Split(' ')[0]).ToArray();
                var row = sections[heading].FirstOrDefault(r => names.All(r.Names.Contains));
                Assert.True(row is not null, $"'{heading} --help' lists {string.Join(", ", names)}, which {CliReference.DocumentPath} does not; "
                    + $"regenerate it: {CliReference.RegenerateCommandLine}");
                Assert.True(row.Required == first.Contains("(REQUIRED)"), $"{heading} {names[^1]}: required in --help and in {CliReference.DocumentPath} differ.");
            }
        }
    }

    // ---- the README's examples parse ----

    [Fact]
    public void Every_example_command_in_the_readme_parses()
    {
        string readme = File.ReadAllText(RepositoryFile("README.md"));
        string[] examples = ReadmeExamples(readme).ToArray();
        foreach (string command in new[] { "demo", "train", "generate", "eval", "score", "rlhf", "ftgenerate", "best-of-n", "info", "tokenize", "doctor" })
            Assert.Contains(examples, e => e.StartsWith(command + " ", StringComparison.Ordinal) || e == command);
        Assert.Contains(examples, e => e.StartsWith("train ", StringComparison.Ordinal) && e.Contains("--config samples/recipes/"));
        foreach (string example in examples)
        {
            var parsed = CliCommands.CreateRoot().Parse(ShellWords(example));
            Assert.True(parsed.Errors.Count == 0, $"README example 'yinghub {example}': {string.Join("; ", parsed.Errors.Select(e => e.Message))}");
        }
    }

    // ---- the generator on a command written out by hand ----

    [Fact]
    public void Markdown_lists_names_aliases_defaults_choices_and_required_and_escapes_markup()
    {
        var mode = new Option<string>("--mode", "-m") { Description = "Pick <x> | *y* at $HOME\nor [z].", DefaultValueFactory = _ => "b" };
        mode.AcceptOnlyFromAmong("b", "a");
        var level = new Argument<string>("level") { Description = "Level.", DefaultValueFactory = _ => "low" };
        level.AcceptOnlyFromAmong("low", "high");
        var run = new Command("run", "Run it.")
        {
            new Option<int>("--count") { Description = "How many.", Required = true },
            mode,
            new Option<bool>("--fast") { Description = "Go fast." },
            new Option<bool>("--safe") { Description = "Stay safe.", DefaultValueFactory = _ => true },
            new Option<string[]>("--tag") { Description = "Tags." },
            new Option<string>("--sep") { Description = "Separator.", DefaultValueFactory = _ => "\t|" },
            new Option<double>("--rate") { Description = "Rate.", DefaultValueFactory = _ => 0.5 },
            new Option<bool>("--secret") { Hidden = true },
            new Argument<string>("file") { Description = "Input." },
            level,
            new Command("deep", "Nested.") { new Option<int>("--depth") { Description = "Depth." } },
        };
        run.Aliases.Add("r");
        run.Aliases.Add("go");
        var root = new RootCommand("Top.") { run, new Command("gone", "Hidden.") { Hidden = true } };

        string[] md;
        var savedUi = CultureInfo.CurrentUICulture;
        CultureInfo.CurrentUICulture = CultureInfo.InvariantCulture; // System.CommandLine translates the help option's description
        try
        {
            md = Lines(CliReference.Markdown(root));
        }
        finally
        {
            CultureInfo.CurrentUICulture = savedUi;
        }

        string[] runSection = Section(md, "## yinghub run");
        Assert.Equal(
        [
            "## yinghub run",
            "",
            "Run it.",
            "",
            "```",
            "yinghub run [command] --count <count> <file> [<level>] [options]",
            "```",
            "",
            "Aliases: `go`, `r`.",
            "",
            "| Command | Description |",
            "| --- | --- |",
            "| [`deep`](#yinghub-run-deep) | Nested. |",
            "",
            "| Argument | Description | Default / choices | Required |",
            "| --- | --- | --- | --- |",
            "| `<file>` | Input. |  | yes |",
            "| `<level>` | Level. | default: `low`; one of: `high`, `low` |  |",
            "",
            "| Option | Aliases | Description | Default / choices | Required |",
            "| --- | --- | --- | --- | --- |",
            "| `--count <count>` |  | How many. |  | yes |",
            @"| `--mode <mode>` | `-m` | Pick \<x\> \| \*y\* at \$HOME or \[z\]. | default: `b`; one of: `a`, `b` |  |",
            "| `--fast` |  | Go fast. |  |  |",
            "| `--safe` |  | Stay safe. | default: `true` |  |",
            "| `--tag <tag>...` |  | Tags. |  |  |",
            @"| `--sep <sep>` |  | Separator. | default: `""\t\|""` |  |",
            "| `--rate <rate>` |  | Rate. | default: `0.5` |  |",
            "| `--help` | `-?`, `-h`, `/?`, `/h` | Show help and usage information |  |  |",
            "",
        ], runSection);
        Assert.Equal(
            ["## yinghub run deep", "", "Nested.", "", "```", "yinghub run deep [options]", "```", "",
             "| Option | Aliases | Description | Default / choices | Required |", "| --- | --- | --- | --- | --- |",
             "| `--depth <depth>` |  | Depth. |  |  |", "| `--help` | `-?`, `-h`, `/?`, `/h` | Show help and usage information |  |  |", ""],
            Section(md, "## yinghub run deep")); // the file ends with one newline
        Assert.Contains("| [`run`](#yinghub-run) | Run it. |", md);
        Assert.DoesNotContain(md, l => l.Contains("gone") || l.Contains("--secret"));
        Assert.Equal(["## yinghub", "## yinghub run", "## yinghub run deep"], md.Where(l => l.StartsWith("## yinghub", StringComparison.Ordinal)));
    }

    // ---- helpers ----

    private sealed record DocRow(HashSet<string> Names, bool Required);

    private static string[] Lines(string text) => text.Replace("\r\n", "\n").Split('\n');

    /// <summary>The lines from <paramref name="heading"/> up to the next heading.</summary>
    private static string[] Section(string[] md, string heading) =>
        md.SkipWhile(l => l != heading).TakeWhile((l, i) => i == 0 || !l.StartsWith("## ", StringComparison.Ordinal)).ToArray();

    /// <summary>Each <c>## yinghub …</c> section's option rows: the option's name and aliases, and whether it is required.</summary>
    private static Dictionary<string, List<DocRow>> DocSections(string md)
    {
        var sections = new Dictionary<string, List<DocRow>>();
        List<DocRow>? rows = null;
        foreach (string line in Lines(md))
        {
            if (line.StartsWith("## yinghub", StringComparison.Ordinal)) sections[line[3..]] = rows = [];
            else if (rows is not null && line.StartsWith("| `-", StringComparison.Ordinal))
            {
                string[] cells = Regex.Split(line.Trim('|'), @"(?<!\\)\|").Select(c => c.Trim()).ToArray();
                var names = Regex.Matches(cells[0] + " " + cells[1], @"`([-/][^` ]+)").Select(m => m.Groups[1].Value).ToHashSet();
                rows.Add(new DocRow(names, cells[4] == "yes"));
            }
        }

        return sections;
    }

    /// <summary>
    /// The first column of each row under <paramref name="header"/> in System.CommandLine's help: rows are indented by
    /// two spaces (a wrapped description's continuation lines by more) and the columns are parted by two or more.
    /// </summary>
    private static string[] HelpSection(string help, string header) =>
        Lines(help).SkipWhile(l => l != header).Skip(1).TakeWhile(l => l.Length > 0)
            .Where(l => l.StartsWith("  ", StringComparison.Ordinal) && l[2] != ' ')
            .Select(l => Regex.Split(l.Trim(), @"\s{2,}")[0]).ToArray();

    /// <summary>
    /// The arguments of every <c>yinghub …</c> in the README (code-block lines, in full or through <c>dotnet run</c>, and
    /// inline code), but for placeholders such as <c>&lt;command&gt;</c>.
    /// </summary>
    private static IEnumerable<string> ReadmeExamples(string readme) =>
        Regex.Matches(readme, @"^(?:yinghub|dotnet run -c Release --project samples/YingHub\.Moe\.Cli --) (.+?)\s*(?:#.*)?$|`yinghub ([^`]+)`", RegexOptions.Multiline)
            .Select(m => (m.Groups[1].Success ? m.Groups[1].Value : m.Groups[2].Value).Trim())
            .Where(example => !example.Contains('<'));

    /// <summary>A command line split as a POSIX shell splits it, for words and '…' or "…" quotes (no escapes).</summary>
    private static string[] ShellWords(string line) =>
        Regex.Matches(line, @"(?:'[^']*'|""[^""]*""|[^\s'""]+)+").Select(m => Regex.Replace(m.Value, @"'([^']*)'|""([^""]*)""", "$1$2")).ToArray();

    /// <summary>A file of this repository (found above the test's output directory by <c>YingHub.Moe.sln</c>).</summary>
    private static string RepositoryFile(string relative)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "YingHub.Moe.sln"))) return Path.Combine(dir.FullName, relative);
        throw new InvalidOperationException($"No YingHub.Moe.sln above {AppContext.BaseDirectory}.");
    }
}
