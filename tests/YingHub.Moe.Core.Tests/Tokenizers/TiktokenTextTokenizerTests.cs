using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Testing;

namespace YingHub.Moe.Core.Tests.Tokenizers;

public class TiktokenTextTokenizerTests
{
    private static readonly string[] Samples =
    [
        "Hello world", " Hello", "a    b", "\t\tindented\n\n\nlines   \n", "I'm sure they don't, they'll've", "café naïve résumé",
        "日本語のテキスト", "emoji 👍🏽 and 🧑‍🚀!", "numbers 12345 and 3.14159", "  leading and trailing  ", "MIXED case WoRdS",
        "<|endoftext|> is text here", "tabs\tand\r\nwindows newlines", "a\u00a0non-breaking space", "Ελληνικά κείμενα", "",
    ];

    /// <summary>GPT-2's encoder written out naively: regex pre-tokenizer, bytes_to_unicode, the classic merge loop.</summary>
    private sealed class NaiveGpt2
    {
        private static readonly Regex Pattern = new(@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+");
        private readonly Dictionary<string, int> _vocab;
        private readonly Dictionary<(string, string), int> _ranks = [];
        private readonly char[] _byteToChar = new char[256];

        public NaiveGpt2(string directory)
        {
            _vocab = JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllText(Path.Combine(directory, "vocab.json")))!;
            var lines = File.ReadAllLines(Path.Combine(directory, "merges.txt")).Where(l => l.Length > 0 && !l.StartsWith("#version")).ToArray();
            for (int i = 0; i < lines.Length; i++)
            {
                var parts = lines[i].Split(' ');
                _ranks[(parts[0], parts[1])] = i;
            }

            int n = 0;
            for (int b = 0; b < 256; b++)
            {
                bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
                _byteToChar[b] = printable ? (char)b : (char)(256 + n++);
            }
        }

        public int[] Encode(string text)
        {
            var ids = new List<int>();
            foreach (Match m in Pattern.Matches(text))
            {
                var symbols = Encoding.UTF8.GetBytes(m.Value).Select(b => _byteToChar[b].ToString()).ToList();
                while (symbols.Count > 1)
                {
                    int best = -1, bestRank = int.MaxValue;
                    for (int i = 0; i < symbols.Count - 1; i++)
                    {
                        if (_ranks.TryGetValue((symbols[i], symbols[i + 1]), out int r) && r < bestRank) (best, bestRank) = (i, r);
                    }

                    if (best < 0) break;
                    var (left, right) = (symbols[best], symbols[best + 1]);
                    var merged = new List<string>();
                    for (int i = 0; i < symbols.Count; i++)
                    {
                        if (i < symbols.Count - 1 && symbols[i] == left && symbols[i + 1] == right) { merged.Add(left + right); i++; }
                        else merged.Add(symbols[i]);
                    }

                    symbols = merged;
                }

                ids.AddRange(symbols.Select(s => _vocab[s]));
            }

            return ids.ToArray();
        }
    }

    [SharedDataFact("gpt2/vocab.json", "gpt2/merges.txt")]
    public void Gpt2_ids_match_known_values_and_an_independent_naive_encoder()
    {
        var tokenizer = TiktokenTextTokenizer.Gpt2(SharedData.Require("gpt2/vocab.json"));
        Assert.Equal(50257, tokenizer.VocabSize);
        Assert.Equal(TiktokenTextTokenizer.Gpt2EndOfText, tokenizer.EndOfTextId);
        Assert.Equal(new[] { 15496, 995 }, tokenizer.Encode("Hello world"));
        Assert.Equal(new[] { 18435 }, tokenizer.Encode(" Hello"));

        var naive = new NaiveGpt2(SharedData.Require("gpt2"));
        var texts = Samples.Where(s => !s.Contains("<|endoftext|>")).ToList();
        if (SharedData.Find("tinyshakespeare.txt") is { } corpus) texts.Add(string.Join("\n", File.ReadLines(corpus).Take(300)));
        foreach (string text in texts)
        {
            int[] ids = tokenizer.Encode(text);
            Assert.Equal(naive.Encode(text), ids);
            Assert.Equal(text, tokenizer.Decode(ids));
            Assert.All(ids, id => Assert.InRange(id, 0, 50255)); // never CodeGen's extra whitespace tokens
        }
    }

    [Fact]
    public void Cl100k_matches_known_ids()
    {
        var tokenizer = TiktokenTextTokenizer.Cl100k();
        Assert.Equal(new[] { 9906, 1917 }, tokenizer.Encode("Hello world"));
        Assert.Equal(100277, tokenizer.VocabSize);
        Assert.Equal("Hello world", tokenizer.Decode([9906, 1917]));
        Assert.Contains("Token id 100277 at position 1 is outside the vocabulary [0, 100277)",
            Assert.Throws<ArgumentException>(() => tokenizer.Decode([9906, 100277])).Message);
        Assert.Throws<ArgumentException>(() => tokenizer.Decode([-1]));
    }

    [SharedDataFact("gpt2/vocab.json")]
    public void Streaming_decode_holds_back_split_characters_and_equals_the_whole_decode()
    {
        var tokenizer = TiktokenTextTokenizer.Gpt2(SharedData.Require("gpt2/vocab.json"));
        foreach (string text in new[] { "emoji 👍🏽 and 🧑‍🚀!", "日本語のテキスト", "plain ascii text", "🎉" })
        {
            int[] ids = tokenizer.Encode(text);
            var decoder = new TextStreamDecoder(tokenizer);
            var pieces = ids.Select(decoder.Push).ToList();
            pieces.Add(decoder.Flush());
            Assert.Equal(text, string.Concat(pieces));
            Assert.All(pieces, p => Assert.DoesNotContain('\uFFFD', p));
            if (text.Any(c => c > 0x7f)) Assert.Contains(pieces.Take(ids.Length), p => p.Length == 0); // something was held back
        }
    }

    [Fact]
    public void Streaming_a_char_tokenizer_yields_every_character_at_once()
    {
        var tokenizer = CharTokenizer.FromCorpus("abc ");
        var decoder = new TextStreamDecoder(tokenizer);
        Assert.Equal(["a", "b", " ", "c"], tokenizer.Encode("ab c").Select(decoder.Push));
        Assert.Equal("", decoder.Flush());
    }
}
