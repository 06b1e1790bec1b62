using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using YingHub.Moe.Core.Checkpoints;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Interop;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tests.Modules;
using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Testing;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Interop;

/// <summary>
/// Export to and import from Hugging Face's Mixtral layout: the files against a list written here from HF's
/// documented layout (MixtralConfig keys, <c>MixtralForCausalLM</c>'s state dict), bit-exact round trips (single file,
/// shards, Transformers 5's fused experts), refusals, and the logits against eng/mixtral-crosscheck.py's independent
/// PyTorch forward.
/// </summary>
public sealed class MixtralInteropTests : IDisposable
{
    private const int V = 23, C = 32, Heads = 4, KvHeads = 2, Hd = 8, Inter = 40, E = 4, K = 2, Layers = 2, Context = 16;
    private readonly string _dir = Directory.CreateTempSubdirectory("yinghub-mixtral-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static MoeModelOptions Options()
    {
        var o = MoePresets.Get("mixtral");
        (o.VocabSize, o.HiddenSize, o.NumHeads, o.NumKeyValueHeads, o.IntermediateSize) = (V, C, Heads, KvHeads, Inter);
        (o.NumExperts, o.TopK, o.NumLayers, o.ContextLength, o.RopeTheta) = (E, K, Layers, Context, 10000);
        return o;
    }

    /// <summary>A mixtral-preset model with every parameter random (norm weights around 1), in evaluation mode.</summary>
    private static MoeForCausalLM RandomModel(int seed)
    {
        torch.manual_seed(seed);
        var model = new MoeForCausalLM(Options());
        using (torch.no_grad())
        {
            foreach (var (name, p) in model.named_parameters())
                p.copy_(name.EndsWith("norm.weight", StringComparison.Ordinal) ? 1 + torch.randn_like(p) * 0.1 : torch.randn_like(p) * 0.2);
        }

        model.eval();
        return model;
    }

    private static Tensor Tokens() => torch.tensor(new long[] { 3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4, 6, 2, 6, 4 }, 2, 12);

    private static Tensor Logits(MoeForCausalLM model)
    {
        using var noGrad = torch.no_grad();
        return model.call(new CausalLMInput(Tokens(), RouterStatistics: false)).Logits;
    }

    /// <summary>The header of a safetensors file, parsed here: name → (dtype, shape), and the metadata.</summary>
    private static (Dictionary<string, (string DType, long[] Shape)> Tensors, JsonObject? Metadata) Header(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        int n = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        var header = JsonNode.Parse(Encoding.UTF8.GetString(bytes, 8, n))!.AsObject();
        var tensors = header.Where(kv => kv.Key != "__metadata__").ToDictionary(kv => kv.Key,
            kv => (kv.Value!["dtype"]!.GetValue<string>(), kv.Value["shape"]!.AsArray().Select(s => s!.GetValue<long>()).ToArray()));
        return (tensors, header["__metadata__"]?.AsObject());
    }

    /// <summary>MixtralForCausalLM's state dict for these sizes, from HF's layout: nn.Linear weights are (out, in).</summary>
    private static Dictionary<string, long[]> HuggingFaceShapes()
    {
        var shapes = new Dictionary<string, long[]>
        {
            ["model.embed_tokens.weight"] = [V, C], ["model.norm.weight"] = [C], ["lm_head.weight"] = [V, C],
        };
        for (int l = 0; l < Layers; l++)
        {
            string p = $"model.layers.{l}.";
            shapes[p + "input_layernorm.weight"] = [C];
            shapes[p + "self_attn.q_proj.weight"] = [Heads * Hd, C];
            shapes[p + "self_attn.k_proj.weight"] = [KvHeads * Hd, C];
            shapes[p + "self_attn.v_proj.weight"] = [KvHeads * Hd, C];
            shapes[p + "self_attn.o_proj.weight"] = [C, Heads * Hd];
            shapes[p + "post_attention_layernorm.weight"] = [C];
            shapes[p + "block_sparse_moe.gate.weight"] = [E, C];
            for (int j = 0; j < E; j++)
            {
                shapes[p + $"block_sparse_moe.experts.{j}.w1.weight"] = [Inter, C];
                shapes[p + $"block_sparse_moe.experts.{j}.w2.weight"] = [C, Inter];
                shapes[p + $"block_sparse_moe.experts.{j}.w3.weight"] = [Inter, C];
            }
        }

        return shapes;
    }

    [Fact]
    public void The_export_has_huggingfaces_config_keys_tensor_names_shapes_and_metadata()
    {
        using var scope = torch.NewDisposeScope();
        using var model = RandomModel(1);
        string dir = Path.Combine(_dir, "hf");
        var result = MixtralExport.Save(model, dir, new CharTokenizer("abcdefghijklmnopqrstuvw"));
        Assert.Equal(["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"], result.Files);

        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!.AsObject();
        var expected = new Dictionary<string, object?>
        {
            ["model_type"] = "mixtral", ["hidden_size"] = C, ["intermediate_size"] = Inter, ["num_hidden_layers"] = Layers,
            ["num_attention_heads"] = Heads, ["num_key_value_heads"] = KvHeads, ["num_local_experts"] = E, ["num_experts_per_tok"] = K,
            ["router_aux_loss_coef"] = 0.01 / K, ["rms_norm_eps"] = 1e-5, ["rope_theta"] = 10000.0, ["max_position_embeddings"] = Context,
            ["vocab_size"] = V, ["tie_word_embeddings"] = false, ["torch_dtype"] = "float32", ["head_dim"] = Hd, ["hidden_act"] = "silu",
            ["router_jitter_noise"] = 0.0, ["sliding_window"] = null,
        };
        foreach (var (key, value) in expected)
        {
            Assert.True(config.ContainsKey(key), $"config.json lacks '{key}'");
            Assert.Equal(JsonSerializer.Serialize(value), config[key]?.ToJsonString() ?? "null");
        }

        Assert.Equal("[\"MixtralForCausalLM\"]", config["architectures"]!.ToJsonString());
        var (tensors, metadata) = Header(Path.Combine(dir, "model.safetensors"));
        Assert.Equal("pt", metadata?["format"]?.GetValue<string>());
        var shapes = HuggingFaceShapes();
        Assert.Equal(shapes.Keys.Order(), tensors.Keys.Order());
        foreach (var (name, shape) in shapes)
        {
            Assert.Equal(shape, tensors[name].Shape);
            Assert.Equal("F32", tensors[name].DType);
        }

        Assert.True(File.Exists(Path.Combine(dir, "generation_config.json")));
    }

    [Fact]
    public void The_exported_tensors_are_the_models_weights_in_out_in_layout()
    {
        using var scope = torch.NewDisposeScope();
        using var model = RandomModel(2);
        string dir = Path.Combine(_dir, "hf");
        MixtralExport.Save(model, dir);
        var hf = Safetensors.Read(Path.Combine(dir, "model.safetensors"));
        var ours = model.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
        // query rows are heads 0..nh-1, then key heads, then value heads, each a Linear (out, in) = our input-major column block, transposed
        var qkv = ours["layers.1.self_attn.qkv_proj.weight"]; // (C, (nh + 2 nkv) hd)
        Same(qkv.narrow(1, Heads * Hd + Hd, Hd).t(), hf["model.layers.1.self_attn.k_proj.weight"].narrow(0, Hd, Hd)); // key head 1
        Same(qkv.narrow(1, (Heads + KvHeads) * Hd, KvHeads * Hd).t(), hf["model.layers.1.self_attn.v_proj.weight"]);
        var fc1 = ours["layers.0.block_sparse_moe.experts.fc1.weight"]; // (E, C, 2H): gate, then up
        Same(fc1[3].narrow(1, 0, Inter).t(), hf["model.layers.0.block_sparse_moe.experts.3.w1.weight"]);
        Same(fc1[3].narrow(1, Inter, Inter).t(), hf["model.layers.0.block_sparse_moe.experts.3.w3.weight"]);
        Same(ours["layers.0.block_sparse_moe.experts.fc2.weight"][2].t(), hf["model.layers.0.block_sparse_moe.experts.2.w2.weight"]);
        Same(ours["layers.0.block_sparse_moe.gate.weight"], hf["model.layers.0.block_sparse_moe.gate.weight"]);
    }

    private static void Same(Tensor expected, Tensor actual)
    {
        Assert.Equal(expected.shape, actual.shape);
        Assert.Equal(Tiny.Values(expected), Tiny.Values(actual));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Export_then_import_gives_the_same_logits_bit_for_bit(bool sharded)
    {
        using var scope = torch.NewDisposeScope();
        using var model = RandomModel(3);
        string dir = Path.Combine(_dir, "hf");
        var result = MixtralExport.Save(model, dir, maxShardBytes: sharded ? 40_000 : MixtralExport.DefaultMaxShardBytes);
        if (sharded)
        {
            var index = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, MixtralExport.IndexFile)))!.AsObject();
            var shards = result.Files.Where(f => f.StartsWith("model-", StringComparison.Ordinal)).ToList();
            Assert.True(shards.Count > 2, $"{shards.Count} shards");
            Assert.All(shards, s => Assert.Matches(@"^model-\d{5}-of-\d{5}\.safetensors$", s));
            Assert.All(shards, s => Assert.True(new FileInfo(Path.Combine(dir, s)).Length <= 40_000 + 4096));
            Assert.Equal(HuggingFaceShapes().Keys.Order(), index["weight_map"]!.AsObject().Select(kv => kv.Key).Order());
            long total = HuggingFaceShapes().Values.Sum(s => s.Aggregate(4L, (a, b) => a * b));
            Assert.Equal(total, index["metadata"]!["total_size"]!.GetValue<long>());
            Assert.False(File.Exists(Path.Combine(dir, MixtralExport.WeightsFile)));
        }

        using var imported = MixtralImport.Load(dir);
        imported.eval();
        Assert.Equal(model.ParameterCount, imported.ParameterCount); // every parameter alive after the import's own dispose scope
        Assert.Equal(Logits(model).data<float>().ToArray(), Logits(imported).data<float>().ToArray());
        Assert.Equal(MixtralImport.ReadOptions(dir).LoadBalancingCoef, model.Options.LoadBalancingCoef, 12);
    }

    [Fact]
    public void Export_and_import_leave_no_tensor_alive_in_a_dispose_scope()
    {
        // the import counts exactly what building and disposing the same model counts (the statistics count some of a
        // new model's own tensors as live after its disposal; that is the model's, measured here as the baseline)
        using var model = RandomModel(8);
        string dir = Path.Combine(_dir, "hf");
        void Cycle()
        {
            MixtralExport.Save(model, dir, maxShardBytes: 60_000);
            using var imported = MixtralImport.Load(dir);
        }

        Cycle(); // warm up
        DisposeScopeManager.Statistics.Reset();
        for (int i = 0; i < 3; i++) MixtralExport.Save(model, dir, maxShardBytes: 60_000);
        long afterSave = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        DisposeScopeManager.Statistics.Reset();
        for (int i = 0; i < 3; i++) { using var m = MixtralImport.Load(dir); }
        long afterLoad = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        DisposeScopeManager.Statistics.Reset();
        for (int i = 0; i < 3; i++) { using var m = new MoeForCausalLM(Options()); }
        Assert.Equal(0L, afterSave);
        Assert.Equal(DisposeScopeManager.Statistics.ThreadTotalLiveCount, afterLoad);
    }

    [Fact]
    public void Tied_embeddings_export_without_lm_head_and_import_tied()
    {
        using var scope = torch.NewDisposeScope();
        var options = Options();
        options.TieWordEmbeddings = true;
        torch.manual_seed(7);
        using var model = new MoeForCausalLM(options);
        model.eval();
        string dir = Path.Combine(_dir, "hf");
        MixtralExport.Save(model, dir);
        Assert.True(JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!["tie_word_embeddings"]!.GetValue<bool>());
        Assert.DoesNotContain("lm_head.weight", Header(Path.Combine(dir, "model.safetensors")).Tensors.Keys); // as Transformers saves a tied model
        using var imported = MixtralImport.Load(dir);
        imported.eval();
        Assert.True(imported.Options.TieWordEmbeddings);
        Assert.Equal(model.ParameterCount, imported.ParameterCount);
        Assert.Equal(Logits(model).data<float>().ToArray(), Logits(imported).data<float>().ToArray());
    }

    [Fact]
    public void Transformers_5_fused_experts_and_bfloat16_import_too()
    {
        using var scope = torch.NewDisposeScope();
        using var model = RandomModel(4);
        string dir = Path.Combine(_dir, "hf");
        MixtralExport.Save(model, dir);
        var classic = Safetensors.Read(Path.Combine(dir, "model.safetensors"));
        // Transformers 5's MixtralExperts: gate_up_proj (E, 2·inter, hidden), gate rows first; down_proj (E, hidden, inter); the gate is mlp.gate
        var fused = classic.Where(kv => !kv.Key.Contains("block_sparse_moe", StringComparison.Ordinal)).ToDictionary(kv => kv.Key, kv => kv.Value);
        for (int l = 0; l < Layers; l++)
        {
            string p = $"model.layers.{l}.";
            fused[p + "mlp.gate.weight"] = classic[p + "block_sparse_moe.gate.weight"];
            fused[p + "mlp.experts.gate_up_proj"] = torch.stack(Enumerable.Range(0, E).Select(j =>
                torch.cat([classic[p + $"block_sparse_moe.experts.{j}.w1.weight"], classic[p + $"block_sparse_moe.experts.{j}.w3.weight"]], 0)));
            fused[p + "mlp.experts.down_proj"] = torch.stack(Enumerable.Range(0, E).Select(j => classic[p + $"block_sparse_moe.experts.{j}.w2.weight"]));
        }

        Safetensors.Write(Path.Combine(dir, "model.safetensors"), fused, new Dictionary<string, string> { ["format"] = "pt" });
        using (var imported = MixtralImport.Load(dir))
        {
            imported.eval();
            Assert.Equal(Logits(model).data<float>().ToArray(), Logits(imported).data<float>().ToArray());
        }

        // bfloat16 weights (as Mixtral ships them) load as float32 and give the logits of the rounded weights
        Safetensors.Write(Path.Combine(dir, "model.safetensors"), classic.ToDictionary(kv => kv.Key, kv => kv.Value.to(ScalarType.BFloat16)), new Dictionary<string, string> { ["format"] = "pt" });
        using var rounded = MixtralImport.Load(dir);
        rounded.eval();
        Tiny.AssertClose(Logits(model), Logits(rounded), atol: 0.5, rtol: 0.1);
        Assert.Equal(ScalarType.Float32, rounded.parameters().First().dtype);
    }

    [Fact]
    public void A_model_the_layout_cannot_express_is_refused_naming_each_misfit()
    {
        using var tiny = new MoeForCausalLM(Tiny.Options(o => { o.Router = RouterKind.NoisyTopK; o.DeepExperts = 1; o.SharedExpert = true; o.MoeEvery = 2; }));
        var ex = Assert.Throws<ArgumentException>(() => MixtralExport.Save(tiny, Path.Combine(_dir, "no")));
        foreach (string phrase in new[] { "learned positions", "LayerNorm", "biases", "Relu experts", "deep experts", "noisy router", "shared expert", "dense layers" })
            Assert.Contains(phrase, ex.Message);
        Assert.False(Directory.Exists(Path.Combine(_dir, "no")));
        var post = Options();
        post.NormPosition = NormPosition.Post;
        post.NormalizeTopKWeights = false;
        var misfits = MixtralLayout.Misfits(post);
        Assert.Equal(2, misfits.Count);
        Assert.Contains(misfits, m => m.Contains("post-norm", StringComparison.Ordinal));
        Assert.Contains(misfits, m => m.Contains("norm_topk_prob", StringComparison.Ordinal));
        Assert.Empty(MixtralLayout.Misfits(Options()));
    }

    [Fact]
    public void Another_model_type_or_a_missing_tensor_is_refused_by_name()
    {
        using var scope = torch.NewDisposeScope();
        using var model = RandomModel(5);
        string dir = Path.Combine(_dir, "hf");
        MixtralExport.Save(model, dir);
        string configPath = Path.Combine(dir, "config.json");
        string original = File.ReadAllText(configPath);
        File.WriteAllText(configPath, original.Replace("\"mixtral\"", "\"llama\"", StringComparison.Ordinal));
        var wrongType = Assert.Throws<InvalidDataException>(() => MixtralImport.Load(dir));
        Assert.Contains("model_type is 'llama'", wrongType.Message);
        File.WriteAllText(configPath, original);

        var weights = Safetensors.Read(Path.Combine(dir, "model.safetensors"));
        weights.Remove("model.layers.1.block_sparse_moe.experts.2.w3.weight");
        Safetensors.Write(Path.Combine(dir, "model.safetensors"), weights, new Dictionary<string, string> { ["format"] = "pt" });
        var missing = Assert.Throws<InvalidDataException>(() => MixtralImport.Load(dir));
        Assert.Contains("'model.layers.1.block_sparse_moe.experts.2.w3.weight' is missing", missing.Message);

        weights["model.layers.1.block_sparse_moe.experts.2.w3.weight"] = torch.zeros(Inter, C);
        weights["model.layers.0.self_attn.q_proj.bias"] = torch.zeros(Heads * Hd);
        Safetensors.Write(Path.Combine(dir, "model.safetensors"), weights, new Dictionary<string, string> { ["format"] = "pt" });
        var extra = Assert.Throws<InvalidDataException>(() => MixtralImport.Load(dir));
        Assert.Contains("'model.layers.0.self_attn.q_proj.bias'", extra.Message);
    }

    [Fact]
    public void A_char_tokenizer_round_trips_through_a_huggingface_tokenizer_json()
    {
        var chars = new CharTokenizer("\n !abcxyz");
        HfTokenizerFile.Write(chars, _dir);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "tokenizer.json")))!;
        Assert.Equal("WordLevel", json["model"]!["type"]!.GetValue<string>());
        Assert.Equal(3, json["model"]!["vocab"]!["a"]!.GetValue<int>());
        var loaded = Assert.IsType<CharTokenizer>(HfTokenizerFile.Load(_dir));
        Assert.Equal(chars.Vocabulary, loaded.Vocabulary);
    }

    [Fact]
    public void Special_tokens_round_trip_as_added_tokens_after_the_vocabulary()
    {
        var tokenizer = new SpecialTokensTokenizer(new CharTokenizer("\n !abcxyz"), ["[R]", "<extra_id_0>"]);
        HfTokenizerFile.Write(tokenizer, _dir);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "tokenizer.json")))!;
        // Hugging Face's layout: each added token with its id after the base vocabulary and special = true
        var added = json["added_tokens"]!.AsArray().Select(a => (Id: (int)a!["id"]!, Content: (string)a["content"]!, Special: (bool)a["special"]!)).ToList();
        Assert.Equal([(9, "[R]", true), (10, "<extra_id_0>", true)], added);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "tokenizer_config.json")))!;
        Assert.Equal(["[R]", "<extra_id_0>"], config["additional_special_tokens"]!.AsArray().Select(t => (string)t!));
        var loaded = Assert.IsType<SpecialTokensTokenizer>(HfTokenizerFile.Load(_dir));
        Assert.Equal(tokenizer.SpecialTokens, loaded.SpecialTokens);
        Assert.Equal(new[] { 9, 3, 10, 1, 4 }, loaded.Encode("[R]a<extra_id_0> b"));
    }

    [SharedDataFact("gpt2/vocab.json", "gpt2/merges.txt")]
    public void Gpt2_merges_derived_from_the_ranks_are_gpt2s_merges_and_the_tokenizer_json_reloads()
    {
        string vocab = SharedData.Require("gpt2/vocab.json");
        var ranks = JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllText(vocab))!;
        var merges = File.ReadAllLines(SharedData.Require("gpt2/merges.txt")).Where(l => l.Length > 0 && !l.StartsWith("#version", StringComparison.Ordinal)).ToList();
        Assert.Equal(merges, HfTokenizerFile.Gpt2Merges(ranks));

        var gpt2 = TiktokenTextTokenizer.Gpt2(vocab);
        HfTokenizerFile.Write(gpt2, _dir, vocab);
        var loaded = HfTokenizerFile.Load(_dir);
        const string text = "Hello  world,\tits  naïve café 東京 🙂 <|endoftext|>";
        Assert.Equal(gpt2.Encode(text), loaded.Encode(text));
        Assert.Equal(gpt2.VocabSize, loaded.VocabSize);

        // with special tokens after GPT-2's 50,257: <|endoftext|> stays GPT-2's, the others come back as special tokens
        var special = new SpecialTokensTokenizer(gpt2, ["[S]", "<extra_id_0>"]);
        HfTokenizerFile.Write(special, _dir, vocab);
        var reloaded = Assert.IsType<SpecialTokensTokenizer>(HfTokenizerFile.Load(_dir));
        Assert.Equal(special.SpecialTokens, reloaded.SpecialTokens);
        Assert.Equal(special.Encode("[S]" + text + "<extra_id_0>"), reloaded.Encode("[S]" + text + "<extra_id_0>"));
    }

    /// <summary>
    /// A SentencePiece BPE model file written here in protobuf (sentencepiece_model.proto: ModelProto 1 = pieces {1 piece,
    /// 2 score, 3 type}, 2 = trainer_spec {3 model_type: 2 BPE}, 3 = normalizer_spec {1 name, 3 add_dummy_prefix,
    /// 4 remove_extra_whitespaces, 5 escape_whitespaces}): &lt;unk&gt; &lt;s&gt; &lt;/s&gt;, eight characters, then merges
    /// scored so that "hello world" becomes ▁hello ▁world.
    /// </summary>
    private static byte[] SentencePieceModel()
    {
        static void Varint(List<byte> b, ulong v) { for (; v >= 0x80; v >>= 7) b.Add((byte)(v | 0x80)); b.Add((byte)v); }
        static void Bytes(List<byte> b, int field, byte[] data) { Varint(b, (ulong)(field << 3 | 2)); Varint(b, (ulong)data.Length); b.AddRange(data); }
        static void Number(List<byte> b, int field, ulong v) { Varint(b, (ulong)(field << 3)); Varint(b, v); }
        var model = new List<byte>();
        (string Piece, float Score, int Type)[] pieces =
        [
            ("<unk>", 0, 2), ("<s>", 0, 3), ("</s>", 0, 3),
            ("▁", -20, 1), ("h", -20, 1), ("e", -20, 1), ("l", -20, 1), ("o", -20, 1), ("w", -20, 1), ("r", -20, 1), ("d", -20, 1),
            ("ll", -1, 1), ("▁h", -2, 1), ("▁he", -3, 1), ("▁hell", -4, 1), ("▁hello", -5, 1), ("▁w", -6, 1), ("or", -7, 1), ("▁wor", -8, 1), ("ld", -9, 1), ("▁world", -10, 1),
        ];
        foreach (var (piece, score, type) in pieces)
        {
            var p = new List<byte>();
            Bytes(p, 1, Encoding.UTF8.GetBytes(piece));
            Varint(p, 2 << 3 | 5);
            p.AddRange(BitConverter.GetBytes(score));
            Number(p, 3, (ulong)type);
            Bytes(model, 1, p.ToArray());
        }

        var trainer = new List<byte>();
        Number(trainer, 3, 2); // BPE
        Bytes(model, 2, trainer.ToArray());
        var normalizer = new List<byte>();
        Bytes(normalizer, 1, Encoding.UTF8.GetBytes("identity"));
        Number(normalizer, 3, 1);
        Number(normalizer, 4, 1);
        Number(normalizer, 5, 1);
        Bytes(model, 3, normalizer.ToArray());
        return model.ToArray();
    }

    [Fact]
    public void A_sentencepiece_tokenizer_model_is_read_and_a_byte_fallback_tokenizer_json_defers_to_it()
    {
        // Mistral's tokenizer.json kind: BPE with byte fallback, which Microsoft.ML.Tokenizers cannot read from tokenizer.json
        File.WriteAllText(Path.Combine(_dir, "tokenizer.json"), """{"model": {"type": "BPE", "byte_fallback": true, "vocab": {}, "merges": []}, "pre_tokenizer": null}""");
        var ex = Assert.Throws<InvalidDataException>(() => HfTokenizerFile.Load(_dir));
        Assert.Contains("byte fallback", ex.Message);
        Assert.Contains("tokenizer.model", ex.Message);

        File.WriteAllBytes(Path.Combine(_dir, "tokenizer.model"), SentencePieceModel());
        var tokenizer = Assert.IsType<SentencePieceTextTokenizer>(HfTokenizerFile.Load(_dir));
        Assert.Equal(21, tokenizer.VocabSize);
        Assert.Equal([15, 20], tokenizer.Encode("hello world")); // ▁hello ▁world, no <s>
        Assert.Equal("hello world", tokenizer.Decode([15, 20]));
    }

    [Fact]
    public void Sizes_parse_as_transformers_does()
    {
        Assert.Equal(5_000_000_000, MixtralExport.ParseSize("5GB"));
        Assert.Equal(2L << 30, MixtralExport.ParseSize("2GiB"));
        Assert.Equal(500_000_000, MixtralExport.ParseSize("500MB"));
        Assert.Equal(1234, MixtralExport.ParseSize("1234"));
        Assert.Throws<FormatException>(() => MixtralExport.ParseSize("5 parsecs"));
        Assert.Throws<FormatException>(() => MixtralExport.ParseSize("0GB"));
    }

    [PythonTorchFact]
    public void An_independent_pytorch_mixtral_forward_gives_the_same_logits()
    {
        using var scope = torch.NewDisposeScope();
        using var model = RandomModel(6);
        string dir = Path.Combine(_dir, "hf");
        MixtralExport.Save(model, dir, maxShardBytes: 60_000); // sharded, so the script reads the index too
        string reference = Path.Combine(_dir, "reference.safetensors");
        Safetensors.Write(reference, new Dictionary<string, Tensor> { ["input_ids"] = Tokens(), ["logits"] = Logits(model) });
        var (code, output) = PythonTorchFactAttribute.Run(PythonTorchFactAttribute.Script("eng/mixtral-crosscheck.py"), dir, reference, "--tolerance", "1e-4");
        Assert.True(code == 0, output);
        Assert.Contains("\"ok\": true", output);
    }
}

/// <summary>
/// A fact skipped, with the reason, when <c>python3</c> with PyTorch is not installed (Debian's <c>/usr/bin/python3</c>
/// first, where <c>python3-torch</c> installs, then <c>python3</c> on the path).
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
internal sealed class PythonTorchFactAttribute : FactAttribute
{
    private static readonly Lazy<bool> Available = new(() =>
    {
        try
        {
            return Run("-c", "import torch").Code == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    });

    public PythonTorchFactAttribute()
    {
        if (!Available.Value) Skip = "python3 with PyTorch is not installed (Debian: apt-get install python3-torch).";
    }

    /// <summary>The repository path of a script (found from the test's directory upwards).</summary>
    public static string Script(string relative)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "YingHub.Moe.sln"))) return Path.Combine(dir.FullName, relative);
        }

        throw new FileNotFoundException($"No repository above {AppContext.BaseDirectory} to find '{relative}' in.");
    }

    /// <summary>Runs python3 with <paramref name="args"/>; the exit code and stdout + stderr.</summary>
    public static (int Code, string Output) Run(params string[] args)
    {
        var start = new ProcessStartInfo(File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, stdout + stderr.Result);
    }
}
