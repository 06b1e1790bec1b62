#!/usr/bin/env python3
"""Cross-checks an exported Hugging Face Mixtral directory against an independent Mixtral forward in plain PyTorch.

The forward below is written from Hugging Face Transformers' models/mixtral/modeling_mixtral.py (MixtralRMSNorm,
MixtralRotaryEmbedding + rotate_half/apply_rotary_pos_emb, repeat_kv, eager attention, MixtralSparseMoeBlock with
MixtralBlockSparseTop2MLP experts, MixtralForCausalLM's untied lm_head), in float64, reading only the exported files:
config.json and the safetensors weights (one model.safetensors, or the shards model.safetensors.index.json names), parsed
here by hand (8-byte little-endian header length, JSON header, raw little-endian data) so neither transformers nor
safetensors is needed. The library's logits for the same tokens come from REFERENCE, a safetensors file with
"input_ids" (I64, (B, T)) and "logits" (F32, (B, T, V)); the test MixtralInteropTests writes one beside an export and
runs this script (tests/YingHub.Moe.Core.Tests/Interop).

usage: mixtral-crosscheck.py EXPORT_DIR REFERENCE [--tolerance 1e-4]

Prints one JSON line (max |difference|, the tolerance, the checks made) and exits 1 when the difference exceeds the
tolerance or a file does not follow the layout (config keys, tensor names and shapes, __metadata__ format pt).
Set-up on Debian 12: `apt-get install -y python3-torch`; run with /usr/bin/python3.
"""
import argparse, json, math, os, struct, sys
import torch

DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32}


def read_safetensors(path, require_pt=True):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", None)
    if require_pt and (meta or {}).get("format") != "pt":
        sys.exit(f"{path}: __metadata__ is {meta}, Transformers needs {{'format': 'pt'}}")
    out = {}
    for name, e in header.items():
        start, end = e["data_offsets"]
        t = torch.frombuffer(bytearray(data[start:end]), dtype=DTYPES[e["dtype"]]) if end > start else torch.empty(0, dtype=DTYPES[e["dtype"]])
        out[name] = t.reshape(e["shape"]).clone()
    return out


def read_weights(directory):
    index = os.path.join(directory, "model.safetensors.index.json")
    if os.path.exists(index):
        weight_map = json.load(open(index))["weight_map"]
        tensors = {}
        for shard in sorted(set(weight_map.values())):
            tensors.update(read_safetensors(os.path.join(directory, shard)))
        if set(tensors) != set(weight_map): sys.exit(f"{index}: the shards hold {len(tensors)} tensors, the index lists {len(weight_map)}")
        return tensors
    return read_safetensors(os.path.join(directory, "model.safetensors"))


class Mixtral:
    """MixtralForCausalLM's forward (no cache, no padding), float64."""

    def __init__(self, cfg, w):
        self.cfg, self.w = cfg, {k: v.to(torch.float64) for k, v in w.items()}
        self.nh, self.nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
        self.hd = cfg.get("head_dim") or cfg["hidden_size"] // self.nh
        self.check_shapes()

    def check_shapes(self):
        c, v, i, e = self.cfg["hidden_size"], self.cfg["vocab_size"], self.cfg["intermediate_size"], self.cfg["num_local_experts"]
        want = {"model.embed_tokens.weight": (v, c), "model.norm.weight": (c,), "lm_head.weight": (v, c)}
        for l in range(self.cfg["num_hidden_layers"]):
            p = f"model.layers.{l}."
            want.update({p + "input_layernorm.weight": (c,), p + "post_attention_layernorm.weight": (c,),
                         p + "self_attn.q_proj.weight": (self.nh * self.hd, c), p + "self_attn.k_proj.weight": (self.nkv * self.hd, c),
                         p + "self_attn.v_proj.weight": (self.nkv * self.hd, c), p + "self_attn.o_proj.weight": (c, self.nh * self.hd),
                         p + "block_sparse_moe.gate.weight": (e, c)})
            for j in range(e):
                q = p + f"block_sparse_moe.experts.{j}."
                want.update({q + "w1.weight": (i, c), q + "w2.weight": (c, i), q + "w3.weight": (i, c)})
        if set(want) != set(self.w):
            sys.exit(f"tensor names differ: missing {sorted(set(want) - set(self.w))[:5]}, unexpected {sorted(set(self.w) - set(want))[:5]}")
        bad = [(k, tuple(self.w[k].shape), s) for k, s in want.items() if tuple(self.w[k].shape) != s]
        if bad: sys.exit(f"shapes differ: {bad[:5]}")

    def rms_norm(self, x, weight):  # MixtralRMSNorm
        variance = x.pow(2).mean(-1, keepdim=True)
        return weight * (x * torch.rsqrt(variance + self.cfg["rms_norm_eps"]))

    def rotary(self, t):  # MixtralRotaryEmbedding: inv_freq over even dims, emb = cat(freqs, freqs)
        inv_freq = 1.0 / (self.cfg["rope_theta"] ** (torch.arange(0, self.hd, 2, dtype=torch.float64) / self.hd))
        freqs = torch.outer(torch.arange(t, dtype=torch.float64), inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()

    @staticmethod
    def rotate_half(x):
        x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
        return torch.cat((-x2, x1), dim=-1)

    @staticmethod
    def repeat_kv(x, n_rep):  # (B, nkv, T, hd) -> (B, nkv * n_rep, T, hd)
        b, nkv, t, hd = x.shape
        return x if n_rep == 1 else x[:, :, None, :, :].expand(b, nkv, n_rep, t, hd).reshape(b, nkv * n_rep, t, hd)

    def attention(self, p, x, cos, sin):
        b, t, _ = x.shape
        q = (x @ self.w[p + "q_proj.weight"].T).view(b, t, self.nh, self.hd).transpose(1, 2)
        k = (x @ self.w[p + "k_proj.weight"].T).view(b, t, self.nkv, self.hd).transpose(1, 2)
        v = (x @ self.w[p + "v_proj.weight"].T).view(b, t, self.nkv, self.hd).transpose(1, 2)
        q, k = q * cos + self.rotate_half(q) * sin, k * cos + self.rotate_half(k) * sin
        k, v = self.repeat_kv(k, self.nh // self.nkv), self.repeat_kv(v, self.nh // self.nkv)
        scores = q @ k.transpose(2, 3) * self.hd ** -0.5
        scores = scores.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
        out = torch.softmax(scores, dim=-1) @ v
        return out.transpose(1, 2).reshape(b, t, self.nh * self.hd) @ self.w[p + "o_proj.weight"].T

    def moe(self, p, x):  # MixtralSparseMoeBlock
        b, t, c = x.shape
        h = x.reshape(-1, c)
        router_logits = h @ self.w[p + "gate.weight"].T
        routing_weights = torch.softmax(router_logits, dim=1)
        routing_weights, selected = torch.topk(routing_weights, self.cfg["num_experts_per_tok"], dim=-1)
        routing_weights = routing_weights / routing_weights.sum(dim=-1, keepdim=True)
        out = torch.zeros_like(h)
        for j in range(self.cfg["num_local_experts"]):
            rows, slot = torch.where(selected == j)
            if rows.numel() == 0: continue
            e = p + f"experts.{j}."
            cur = h[rows]
            y = (torch.nn.functional.silu(cur @ self.w[e + "w1.weight"].T) * (cur @ self.w[e + "w3.weight"].T)) @ self.w[e + "w2.weight"].T
            out.index_add_(0, rows, y * routing_weights[rows, slot, None])
        return out.reshape(b, t, c)

    def forward(self, ids):
        x = self.w["model.embed_tokens.weight"][ids]
        cos, sin = self.rotary(ids.shape[1])
        for l in range(self.cfg["num_hidden_layers"]):
            p = f"model.layers.{l}."
            x = x + self.attention(p + "self_attn.", self.rms_norm(x, self.w[p + "input_layernorm.weight"]), cos, sin)
            x = x + self.moe(p + "block_sparse_moe.", self.rms_norm(x, self.w[p + "post_attention_layernorm.weight"]))
        return self.rms_norm(x, self.w["model.norm.weight"]) @ self.w["lm_head.weight"].T


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("export_dir")
    ap.add_argument("reference")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    a = ap.parse_args()
    cfg = json.load(open(os.path.join(a.export_dir, "config.json")))
    for key, value in {"model_type": "mixtral", "architectures": ["MixtralForCausalLM"], "tie_word_embeddings": False, "hidden_act": "silu"}.items():
        if cfg.get(key) != value: sys.exit(f"config.json: {key} is {cfg.get(key)!r}, expected {value!r}")
    model = Mixtral(cfg, read_weights(a.export_dir))
    ref = read_safetensors(a.reference, require_pt=False)
    ids, ours = ref["input_ids"], ref["logits"].to(torch.float64)
    with torch.no_grad():
        theirs = model.forward(ids)
    diff = (theirs - ours).abs().max().item()
    ok = math.isfinite(diff) and diff <= a.tolerance
    print(json.dumps({"max_abs_diff": diff, "tolerance": a.tolerance, "tokens": list(ids.shape), "vocab": cfg["vocab_size"],
                      "layers": cfg["num_hidden_layers"], "heads": [model.nh, model.nkv], "ok": ok}))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
