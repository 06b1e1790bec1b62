#!/usr/bin/env python3
"""Cross-checks a `makemoe-exact` checkpoint against makeMoE's own PyTorch code: the loss `yinghub eval` reports must
equal the loss makeMoE's SparseMoELanguageModel computes with the same weights on the same tokens (target: 1e-4).

Set-up on Debian 12: `apt-get install -y python3-torch libopenblas0-pthread`, and a copy of makeMoE.py from the public
repository AviSoori1x/makeMoE in a directory outside the project (never commit it). Run with Debian's /usr/bin/python3.

usage: makemoe-crosscheck.py MAKEMOE_DIR CHECKPOINT CORPUS [--train STEPS] [--windows N] [--batches 1,4]
                             [--yinghub CMD] [--tolerance 1e-4]

MAKEMOE_DIR holds makeMoE.py (read at run time, never copied into the project). CHECKPOINT is a directory written by
`yinghub train --preset makemoe-exact` (with --train STEPS, one is trained there first if it does not exist yet).
CORPUS is the text it was trained on (Tiny Shakespeare: char tokens, the vocabulary makeMoE builds from input.txt).

How the tokens are made the same on both sides: `yinghub eval` scores the held-out last 10% of a file, at a seeded
random offset. Each check writes a slice of the corpus whose held-out part is exactly one block plus its target
(L - int(0.9 L) = block + 1), so the only offset the sampler can draw is 0 and every row of the batch is that block;
makeMoE scores the same block, repeated as many times. Router noise is switched off in makeMoE's evaluation (a forward
hook makes noise_linear return -inf, so softplus gives 0), as the library has none there; everything else is
makeMoE's own code, capacity included (int(B*T*k/E) per expert, first come first served in flat token order, in
evaluation too). Prints one JSON line per check and a summary line; exits 1 when a difference exceeds the tolerance.
"""
import argparse, importlib.util, json, os, shlex, shutil, struct, subprocess, sys, tempfile
import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the architecture makeMoE.py hard-codes; a checkpoint with anything else cannot load into its classes faithfully
EXPECTED = {"position_encoding": "Learned", "norm_type": "LayerNorm", "norm_position": "Pre", "attention_scale": "HiddenSize",
            "attention_qkv_bias": False, "attention_output_bias": True, "lm_head_bias": True, "tie_word_embeddings": False,
            "hidden_act": "Relu", "router_type": "NoisyTopK", "norm_topk_prob": True, "num_deep_experts": 0, "expert_multiplier": 4,
            "shared_expert": False, "moe_layer_frequency": 1, "capacity_factor": 1, "capacity_in_eval": True,
            "capacity_rounding": "Floor", "capacity_ranking": "Flat", "router_noise_min_temperature": 1,
            "router_noise_max_temperature": 1, "label_smoothing": 0, "norm_eps": 1e-05}


def yinghub_command(arg):
    if arg: return shlex.split(arg)
    dll = os.path.join(REPO, "samples/YingHub.Moe.Cli/bin/Release/net10.0/yinghub.dll")
    if os.path.exists(dll): return ["dotnet", dll]
    return ["dotnet", "run", "-c", "Release", "--project", os.path.join(REPO, "samples/YingHub.Moe.Cli"), "--"]


def read_safetensors(path):
    dtypes = {"F32": np.float32, "I64": np.int64}
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    if meta.get("weight_layout") != "in_out": sys.exit(f"{path}: expected weight_layout in_out, got {meta.get('weight_layout')}")
    out = {}
    for name, e in header.items():
        start, end = e["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[start:end], dtype=dtypes[e["dtype"]]).reshape(e["shape"]).copy())
    return out


def load_makemoe(makemoe_dir, corpus, cfg):
    work = tempfile.mkdtemp()
    shutil.copy(corpus, os.path.join(work, "input.txt"))  # makeMoE.py reads input.txt from the working directory on import
    cwd = os.getcwd(); os.chdir(work)
    try:
        spec = importlib.util.spec_from_file_location("makeMoE", os.path.join(makemoe_dir, "makeMoE.py"))
        mm = importlib.util.module_from_spec(spec); spec.loader.exec_module(mm)
    finally:
        os.chdir(cwd); shutil.rmtree(work)
    mm.device = "cpu"
    mm.vocab_size, mm.block_size, mm.n_embed = cfg["vocab_size"], cfg["max_position_embeddings"], cfg["hidden_size"]
    mm.n_head, mm.n_layer, mm.num_experts, mm.top_k = cfg["num_attention_heads"], cfg["num_hidden_layers"], cfg["num_local_experts"], cfg["num_experts_per_tok"]
    mm.head_size, mm.dropout = mm.n_embed // mm.n_head, cfg["hidden_dropout"]
    return mm


def makemoe_state(w, cfg):
    """The library's keys and input-major layouts mapped onto makeMoE's module names and (out, in) Linear weights."""
    c, nh = cfg["hidden_size"], cfg["num_attention_heads"]; hd = c // nh
    s = {"token_embedding_table.weight": w["embed_tokens.weight"], "position_embedding_table.weight": w["embed_positions.weight"],
         "ln_f.weight": w["norm.weight"], "ln_f.bias": w["norm.bias"], "lm_head.weight": w["lm_head.weight"], "lm_head.bias": w["lm_head.bias"]}
    used = set(s_key for s_key in ["embed_tokens.weight", "embed_positions.weight", "norm.weight", "norm.bias", "lm_head.weight", "lm_head.bias"])
    for l in range(cfg["num_hidden_layers"]):
        p, b = f"layers.{l}.", f"blocks.{l}."
        qkv = w[p + "self_attn.qkv_proj.weight"]  # (C, 3C): q heads, k heads, v heads
        for h in range(nh):
            for part, name in enumerate(["query", "key", "value"]):
                s[f"{b}sa.heads.{h}.{name}.weight"] = qkv[:, part * c + h * hd: part * c + (h + 1) * hd].t().contiguous()
        s[b + "sa.proj.weight"] = w[p + "self_attn.o_proj.weight"].t().contiguous(); s[b + "sa.proj.bias"] = w[p + "self_attn.o_proj.bias"]
        for ours, theirs in [("input_layernorm", "ln1"), ("post_attention_layernorm", "ln2")]:
            s[f"{b}{theirs}.weight"], s[f"{b}{theirs}.bias"] = w[f"{p}{ours}.weight"], w[f"{p}{ours}.bias"]
        g = p + "block_sparse_moe.gate."
        s[b + "smoe.router.topkroute_linear.weight"], s[b + "smoe.router.topkroute_linear.bias"] = w[g + "weight"], w[g + "bias"]
        s[b + "smoe.router.noise_linear.weight"], s[b + "smoe.router.noise_linear.bias"] = w[g + "noise.weight"], w[g + "noise.bias"]
        x = p + "block_sparse_moe.experts."
        for e in range(cfg["num_local_experts"]):
            s[f"{b}smoe.experts.{e}.net.0.weight"] = w[x + "fc1.weight"][e].t().contiguous(); s[f"{b}smoe.experts.{e}.net.0.bias"] = w[x + "fc1.bias"][e]
            s[f"{b}smoe.experts.{e}.net.2.weight"] = w[x + "fc2.weight"][e].t().contiguous(); s[f"{b}smoe.experts.{e}.net.2.bias"] = w[x + "fc2.bias"][e]
        used |= {p + k for k in ["self_attn.qkv_proj.weight", "self_attn.o_proj.weight", "self_attn.o_proj.bias", "input_layernorm.weight",
                                 "input_layernorm.bias", "post_attention_layernorm.weight", "post_attention_layernorm.bias"]}
        used |= {g + k for k in ["weight", "bias", "noise.weight", "noise.bias"]} | {x + k for k in ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]}
    # what makeMoE has no place for: the utilization window (statistics) and the noise temperature (clamped to [1, 1])
    left = sorted(k for k in w if k not in used and not k.endswith((".utilization.counts", ".utilization.cursor", ".gate.noise_temperature")))
    if left: sys.exit(f"checkpoint tensors makeMoE has no place for: {left}")
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("makemoe_dir"); ap.add_argument("checkpoint"); ap.add_argument("corpus")
    ap.add_argument("--train", type=int, default=0, help="train a makemoe-exact checkpoint for this many steps if CHECKPOINT is missing")
    ap.add_argument("--windows", type=int, default=4); ap.add_argument("--batches", default="1,4")
    ap.add_argument("--yinghub", default=None, help="command that runs the CLI (default: the Release build's yinghub.dll)")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    a = ap.parse_args()
    cli = yinghub_command(a.yinghub)
    if not os.path.exists(os.path.join(a.checkpoint, "config.json")):
        if a.train < 1: sys.exit(f"{a.checkpoint} holds no checkpoint; pass --train STEPS to make one")
        subprocess.run(cli + ["train", "--preset", "makemoe-exact", "--steps", str(a.train), "--data", a.corpus, "--out", a.checkpoint], check=True,
                       stdout=subprocess.DEVNULL)

    cfg = json.load(open(os.path.join(a.checkpoint, "config.json")))
    wrong = {k: (cfg.get(k), v) for k, v in EXPECTED.items() if cfg.get(k) != v}
    if wrong: sys.exit(f"not a makemoe-exact architecture (key: (checkpoint, needed)): {wrong}")
    tok = json.load(open(os.path.join(a.checkpoint, "tokenizer.json")))
    if tok.get("kind") != "char": sys.exit(f"expected char tokens, got {tok.get('kind')}")
    stoi = {ch: i for i, ch in enumerate(tok["vocabulary"])}

    torch.manual_seed(0)
    mm = load_makemoe(a.makemoe_dir, a.corpus, cfg)
    model = mm.SparseMoELanguageModel()
    missing, unexpected = model.load_state_dict(makemoe_state(read_safetensors(os.path.join(a.checkpoint, "model.safetensors")), cfg), strict=False)
    missing = [k for k in missing if not k.endswith(".tril")]  # the causal mask buffers are makeMoE's own
    if missing or unexpected: sys.exit(f"makeMoE keys not loaded: {missing}; unknown keys: {unexpected}")
    for block in model.blocks:  # no router noise in evaluation, as the library: softplus(-inf) = 0
        block.smoe.router.noise_linear.register_forward_hook(lambda m, i, o: torch.full_like(o, float("-inf")))
    model.eval()

    text = open(a.corpus, encoding="utf-8").read()
    block = cfg["max_position_embeddings"]
    length = 10 * (block + 1)
    train = int(length * 0.9)  # BlockSampler.Split: (long)(count * 0.9), the same double product
    if length - train != block + 1: sys.exit(f"cannot make a held-out part of exactly {block + 1} tokens from {length}")
    work = tempfile.mkdtemp()
    worst, rows = 0.0, []
    try:
        for i in range(a.windows):
            start = i * (len(text) - length) // max(1, a.windows - 1)
            piece = text[start:start + length]
            path = os.path.join(work, f"crosscheck-{os.getpid()}-{i}.txt")
            open(path, "w", encoding="utf-8").write(piece)
            ids = torch.tensor([stoi[ch] for ch in piece])
            for b in [int(s) for s in a.batches.split(",")]:
                run = subprocess.run(cli + ["eval", "--checkpoint", a.checkpoint, "--data", path, "--batches", "1", "--batch", str(b), "--json"],
                                     check=True, capture_output=True, text=True)
                ours = json.loads(run.stdout.strip().splitlines()[-1])["loss"]
                x = ids[train:train + block].repeat(b, 1); y = ids[train + 1:train + block + 1].repeat(b, 1)
                with torch.no_grad():
                    theirs = model(x, y)[1].item()
                    for blk in model.blocks: blk.smoe.capacity_factor = 1e9  # the same forward without capacity, for contrast
                    dropless = model(x, y)[1].item()
                    for blk in model.blocks: blk.smoe.capacity_factor = 1.0
                worst = max(worst, abs(ours - theirs))
                row = {"window": i, "offset": start, "batch": b, "block": block, "yinghub_eval": round(ours, 7), "makemoe": round(theirs, 7),
                       "abs_diff": abs(ours - theirs), "makemoe_without_capacity": round(dropless, 7)}
                rows.append(row); print(json.dumps(row))
    finally:
        shutil.rmtree(work)
        cache = os.path.join(tempfile.gettempdir(), "yinghub-eval")
        for f in os.listdir(cache) if os.path.isdir(cache) else []:
            if f.startswith(f"crosscheck-{os.getpid()}-"): os.remove(os.path.join(cache, f))
    ok = worst <= a.tolerance
    print(json.dumps({"checks": len(rows), "max_abs_diff": worst, "tolerance": a.tolerance, "ok": ok, "torch": torch.__version__}))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
