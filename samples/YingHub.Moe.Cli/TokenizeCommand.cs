using System.CommandLine;
using System.Text.Json;
using YingHub.Moe.Core.Tokenizers;

namespace YingHub.Moe.Cli;

/// <summary><c>yinghub tokenize</c>: token ids of a text (or, with <c>--decode</c>, text of ids), to compare with other tools.</summary>
internal static class TokenizeCommand
{
    public static Command Create()
    {
        var kind = new Option<string>("--tokenizer") { Description = "char, gpt2, cl100k or o200k.", DefaultValueFactory = _ => "gpt2" };
        kind.AcceptOnlyFromAmong("char", "gpt2", "cl100k", "o200k");
        var vocab = new Option<string?>("--vocab") { Description = "gpt2: the directory holding vocab.json (default ../shared/data/gpt2); char: a checkpoint directory (tokenizer.json) or a corpus file (default Tiny Shakespeare)." };
        var text = new Option<string?>("--text") { Description = "The text (or, with --decode, ids separated by spaces or commas)." };
        var file = new Option<string?>("--file") { Description = "A file holding the text (or the ids)." };
        var decode = new Option<bool>("--decode") { Description = "Decode ids back to text." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object: tokenizer, ids, text, count." };
        var command = new Command("tokenize", "Encode text to token ids, or decode ids to text.") { kind, vocab, text, file, decode, json };
        command.SetAction(parse => Cli.Run(() => Run(parse.GetValue(kind)!, parse.GetValue(vocab), parse.GetValue(text), parse.GetValue(file), parse.GetValue(decode), parse.GetValue(json))));
        return command;
    }

    private static int Run(string kind, string? vocab, string? text, string? file, bool decode, bool json)
    {
        string input = Cli.ReadInput(text, file);
        ITextTokenizer tokenizer = Create(kind, vocab);
        int[] ids;
        string output;
        if (decode)
        {
            ids = input.Split([' ', ',', '\n', '\r', '\t', '[', ']'], StringSplitOptions.RemoveEmptyEntries)
                .Select(s => int.TryParse(s, out int id) ? id : throw new CliException($"'{s}' is not a token id."))
                .ToArray();
            output = tokenizer.Decode(ids);
        }
        else
        {
            ids = tokenizer.Encode(input);
            output = input;
        }

        if (json) Console.WriteLine(JsonSerializer.Serialize(new { tokenizer = tokenizer.Name, ids, text = output, count = ids.Length }));
        else Console.WriteLine(decode ? output : string.Join(' ', ids));
        return 0;
    }

    private static ITextTokenizer Create(string kind, string? vocab)
    {
        switch (kind)
        {
            case "cl100k": return TiktokenTextTokenizer.Cl100k();
            case "o200k": return TiktokenTextTokenizer.O200k();
            case "gpt2":
            {
                string dir = vocab ?? Path.GetDirectoryName(DataFiles.Locate(null, Path.Combine("gpt2", "vocab.json")))!;
                return TiktokenTextTokenizer.Gpt2(Path.Combine(dir, "vocab.json"));
            }

            default:
            {
                if (vocab is not null && Directory.Exists(vocab)) return TokenizerFiles.Load(vocab);
                return CharTokenizer.FromCorpus(File.ReadAllText(DataFiles.Locate(vocab, "tinyshakespeare.txt")));
            }
        }
    }
}
