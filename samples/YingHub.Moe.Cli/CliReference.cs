using System.CommandLine;
using System.CommandLine.Completions;
using System.CommandLine.Invocation;
using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace YingHub.Moe.Cli;

/// <summary>
/// Writes <c>docs/cli.md</c> from the commands' own System.CommandLine definitions (names, aliases, descriptions,
/// defaults, choices, required), so the reference cannot drift from the program: a test regenerates it and compares,
/// and the hidden <c>yinghub --cli-reference</c> prints it (<see cref="RegenerateCommandLine"/>).
/// </summary>
internal static class CliReference
{
    /// <summary>The hidden root option that prints the reference.</summary>
    public const string OptionName = "--cli-reference";

    /// <summary>The reference's path from the repository root.</summary>
    public const string DocumentPath = "docs/cli.md";

    /// <summary>The command line, run from the repository root, that rewrites <see cref="DocumentPath"/>.</summary>
    public const string RegenerateCommandLine = "dotnet run --project samples/YingHub.Moe.Cli -c Release -- " + OptionName + " > " + DocumentPath;

    // What every command shares; it lives in Program.cs, Cli.cs and DataFiles.cs rather than in any one option's definition.
    private const string Conventions = """
        ## Conventions

        - From a clone, `yinghub` stands for `dotnet run -c Release --project samples/YingHub.Moe.Cli --`.
        - Errors are one line on standard error, never a stack trace: exit code 2 for a bad flag or value (the line points
          at the command's `--help`), 1 for a failure such as a missing file or checkpoint, a wrong tokenizer or a bad
          config file.
        - `train` and `rlhf` handle Ctrl-C (SIGINT) and SIGTERM (`docker stop`) alike: they finish the step, save a
          checkpoint that `--resume` continues, and exit with 130 or 143; a second signal stops at once.
        - With `--json`, progress is plain lines (no progress bar) and the last line of standard output is one JSON object.
        - The corpus name `tinyshakespeare` is looked up in `$YINGHUB_DATA_DIR`, then `../shared/data`, then the user
          cache (`$XDG_CACHE_HOME/yinghub` or `~/.cache/yinghub`); otherwise char-rnn's `input.txt` is downloaded into that
          cache after its size and SHA-256 are checked.
        - Relative paths, in flags and in config files alike, are relative to the current directory.
        """;

    /// <summary>The hidden option that prints the reference; hidden, so neither <c>--help</c> nor the reference lists it.</summary>
    public static Option<bool> CreateOption() => new(OptionName)
    {
        Description = $"Print the Markdown reference of every command ({DocumentPath}) and exit.",
        Hidden = true,
        Action = new PrintAction(),
    };

    /// <summary>
    /// The reference exactly as <see cref="DocumentPath"/> holds it, from freshly built commands in the invariant
    /// culture: descriptions format numbers (0.002, never 0,002) and System.CommandLine translates its own texts (the
    /// help option's), so the file would otherwise depend on the machine that wrote it.
    /// </summary>
    public static string Generate()
    {
        var (culture, uiCulture) = (CultureInfo.CurrentCulture, CultureInfo.CurrentUICulture);
        CultureInfo.CurrentCulture = CultureInfo.CurrentUICulture = CultureInfo.InvariantCulture;
        try
        {
            return Markdown(CliCommands.CreateRoot());
        }
        finally
        {
            (CultureInfo.CurrentCulture, CultureInfo.CurrentUICulture) = (culture, uiCulture);
        }
    }

    /// <summary>The Markdown reference of <paramref name="root"/>: the root, then one section per command (depth first), hidden symbols left out.</summary>
    public static string Markdown(RootCommand root)
    {
        var md = new StringBuilder();
        md.Append($"# `{CliCommands.ProgramName}` command reference\n\n");
        md.Append("Generated from the commands' System.CommandLine definitions ([`CliCommands.cs`](../samples/YingHub.Moe.Cli/CliCommands.cs)\n");
        md.Append("and the `*Command.cs` files beside it); do not edit it by hand. After changing a command, regenerate it from the\n");
        md.Append($"repository root (`CliReferenceTests` fails while the two disagree):\n\n```bash\n{RegenerateCommandLine}\n```\n\n");
        md.Append(Conventions.Replace("\r\n", "\n")).Append("\n\n");
        foreach (var (command, path) in Walk(root, CliCommands.ProgramName)) Section(md, command, path);
        return md.ToString().TrimEnd('\n') + "\n";
    }

    /// <summary>Every visible command with its full invocation (<c>yinghub train</c>), parents before children.</summary>
    private static IEnumerable<(Command Command, string Path)> Walk(Command command, string path)
    {
        yield return (command, path);
        foreach (var sub in command.Subcommands.Where(c => !c.Hidden))
            foreach (var item in Walk(sub, $"{path} {sub.Name}")) yield return item;
    }

    private static void Section(StringBuilder md, Command command, string path)
    {
        var options = VisibleOptions(command).ToList();
        var arguments = command.Arguments.Where(a => !a.Hidden).ToList();
        var subcommands = command.Subcommands.Where(c => !c.Hidden).ToList();
        md.Append($"## {path}\n\n");
        if (command.Description is { Length: > 0 } description) md.Append(Text(description)).Append("\n\n");
        md.Append("```\n").Append(Synopsis(path, options, arguments, subcommands.Count > 0)).Append("\n```\n\n");
        if (command.Aliases.Count > 0) md.Append($"Aliases: {string.Join(", ", command.Aliases.Order(StringComparer.Ordinal).Select(Code))}.\n\n");

        if (subcommands.Count > 0)
        {
            md.Append("| Command | Description |\n| --- | --- |\n");
            foreach (var sub in subcommands)
                md.Append($"| [{Code(sub.Name)}](#{Anchor($"{path} {sub.Name}")}) | {Text(sub.Description ?? "")} |\n");
            md.Append('\n');
        }

        if (arguments.Count > 0)
        {
            md.Append("| Argument | Description | Default / choices | Required |\n| --- | --- | --- | --- |\n");
            foreach (var a in arguments)
                md.Append($"| {Code($"<{a.HelpName ?? a.Name}>")} | {Text(a.Description ?? "")} | {DefaultAndChoices(a)} | {(IsRequired(a) ? "yes" : "")} |\n");
            md.Append('\n');
        }

        md.Append("| Option | Aliases | Description | Default / choices | Required |\n| --- | --- | --- | --- | --- |\n");
        foreach (var o in options)
        {
            string aliases = string.Join(", ", o.Aliases.Order(StringComparer.Ordinal).Select(Code));
            md.Append($"| {Code(Usage(o))} | {aliases} | {Text(o.Description ?? "")} | {DefaultAndChoices(o)} | {(o.Required ? "yes" : "")} |\n");
        }

        md.Append('\n');
    }

    /// <summary>The command's own options, then the recursive options of its ancestors (as <c>--help</c> lists them, e.g. <c>--help</c> itself).</summary>
    private static IEnumerable<Option> VisibleOptions(Command command)
    {
        var seen = new HashSet<Option>();
        foreach (var o in command.Options.Where(o => !o.Hidden && seen.Add(o))) yield return o;
        for (var parent = command.Parents.OfType<Command>().FirstOrDefault(); parent is not null; parent = parent.Parents.OfType<Command>().FirstOrDefault())
            foreach (var o in parent.Options.Where(o => o.Recursive && !o.Hidden && seen.Add(o))) yield return o;
    }

    /// <summary>The invocation with its required options and arguments spelt out, e.g. <c>yinghub rlhf --checkpoint &lt;checkpoint&gt; [options]</c>.</summary>
    private static string Synopsis(string path, IEnumerable<Option> options, IEnumerable<Argument> arguments, bool hasSubcommands)
    {
        var parts = new List<string> { path };
        if (hasSubcommands) parts.Add("[command]");
        parts.AddRange(options.Where(o => o.Required).Select(Usage));
        parts.AddRange(arguments.Select(a => IsRequired(a) ? $"<{a.HelpName ?? a.Name}>" : $"[<{a.HelpName ?? a.Name}>]"));
        parts.Add("[options]");
        return string.Join(' ', parts);
    }

    /// <summary>An option as typed: a flag alone, else its value placeholder (with <c>...</c> when it can repeat).</summary>
    private static string Usage(Option option)
    {
        if (IsFlag(option)) return option.Name;
        string repeat = option.Arity.MaximumNumberOfValues > 1 ? "..." : "";
        return $"{option.Name} <{option.HelpName ?? option.Name.TrimStart('-')}>{repeat}";
    }

    // a switch takes no value (--help) or an optional bool (--json): its completions (true, false) are not choices
    // worth listing, nor is its implicit default, false
    private static bool IsFlag(Option option) =>
        option.Arity.MaximumNumberOfValues == 0 || (option.ValueType == typeof(bool) && option.Arity.MinimumNumberOfValues == 0);

    private static bool IsRequired(Argument argument) => argument.Arity.MinimumNumberOfValues > 0 && !argument.HasDefaultValue;

    private static string DefaultAndChoices(Option option)
    {
        if (!IsFlag(option)) return DefaultAndChoices(option.HasDefaultValue ? option.GetDefaultValue() : null, option.HasDefaultValue, option.GetCompletions(CompletionContext.Empty));
        bool on = option.HasDefaultValue && option.GetDefaultValue() is true;
        return on ? DefaultAndChoices(true, hasDefault: true, []) : "";
    }

    private static string DefaultAndChoices(Argument argument) =>
        DefaultAndChoices(argument.HasDefaultValue ? argument.GetDefaultValue() : null, argument.HasDefaultValue,
            argument.ValueType == typeof(bool) ? [] : argument.GetCompletions(CompletionContext.Empty));

    private static string DefaultAndChoices(object? value, bool hasDefault, IEnumerable<CompletionItem> completions)
    {
        var parts = new List<string>();
        if (hasDefault) parts.Add($"default: {Code(Value(value))}");
        string[] choices = completions.Select(c => c.Label).ToArray(); // System.CommandLine sorts them, as --help shows them
        if (choices.Length > 0) parts.Add($"one of: {string.Join(", ", choices.Select(Code))}");
        return string.Join("; ", parts);
    }

    /// <summary>
    /// A default value as the user would type it; a string that would not survive a table cell (empty, a newline, edge
    /// spaces) is shown as a JSON string literal (<c>"\n"</c>).
    /// </summary>
    private static string Value(object? value)
    {
        string text = value switch
        {
            null => "null",
            bool b => b ? "true" : "false",
            string s => s,
            System.Collections.IEnumerable items => string.Join(" ", items.Cast<object?>().Select(Value)),
            IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
            _ => value.ToString() ?? "",
        };
        text = Portable(text);
        bool plain = text.Length > 0 && text.All(c => !char.IsControl(c)) && text.Trim() == text;
        return plain ? text : JsonSerializer.Serialize(text, LiteralJson);
    }

    // escapes only what JSON requires (quotes, backslashes, control characters), not <, > or non-ASCII letters
    private static readonly JsonSerializerOptions LiteralJson = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Inline code in a table cell; pipes stay escaped there too (GitHub splits cells before it reads code spans).</summary>
    private static string Code(string text) => $"`{text.Replace("|", "\\|")}`";

    /// <summary>
    /// Prose in Markdown: punctuation that would start markup (<c>&lt;letter&gt;</c> as an HTML tag, <c>*</c> as
    /// emphasis, <c>$…$</c> as math, <c>|</c> as a cell border) is backslash-escaped; line breaks become spaces.
    /// </summary>
    private static string Text(string text)
    {
        var md = new StringBuilder();
        foreach (char c in Cli.OneLine(Portable(text)))
        {
            if (c is '\\' or '`' or '*' or '<' or '>' or '|' or '[' or ']' or '$') md.Append('\\');
            md.Append(c);
        }

        return md.ToString();
    }

    /// <summary>
    /// <paramref name="text"/> with this platform's path separator turned into <c>/</c>: defaults and descriptions hold
    /// paths built with Path.Combine (<c>runs/rlhf</c>), and the reference shows them as on Linux and macOS, so a
    /// reference written on Windows is the same file.
    /// </summary>
    private static string Portable(string text) => Portable(text, Path.DirectorySeparatorChar);

    /// <summary><paramref name="text"/> with <paramref name="separator"/> turned into <c>/</c>.</summary>
    internal static string Portable(string text, char separator) => separator == '/' ? text : text.Replace(separator, '/');

    /// <summary>GitHub's heading anchor: lower case, punctuation other than <c>-</c> and <c>_</c> dropped, spaces to <c>-</c>.</summary>
    private static string Anchor(string heading) =>
        new string(heading.ToLowerInvariant().Where(c => char.IsLetterOrDigit(c) || c is ' ' or '-' or '_').ToArray()).Replace(' ', '-');

    /// <summary>Prints the reference (a terminating action, as <c>--help</c>'s: the root needs no command with it).</summary>
    private sealed class PrintAction : SynchronousCommandLineAction
    {
        public override int Invoke(ParseResult parseResult)
        {
            parseResult.InvocationConfiguration.Output.Write(Generate());
            return 0;
        }
    }
}
