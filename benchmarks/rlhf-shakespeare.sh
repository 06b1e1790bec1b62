#!/usr/bin/env bash
# RL fine-tuning on Tiny Shakespeare with the Shakespeare reward: PPO, GRPO and best-of-n, one sitting, nothing else running.
# Usage: benchmarks/rlhf-shakespeare.sh OUT_DIR [BASE_CHECKPOINT]
#   Without BASE_CHECKPOINT it first trains the yinghub-v2 preset (char tokens, 600 steps of batch 16, dropout 0.1) into OUT_DIR/base.
#   Every run prints one JSON line (reward_before / reward_after over the same 64 held-out prompts and seed, kl, ...);
#   metrics and PNG curves (reward.png, kl.png, routing.png) land in OUT_DIR/<run>.cache. docs/benchmarks.md has the numbers.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:?usage: $0 OUT_DIR [BASE_CHECKPOINT]}"
mkdir -p "$out"
dotnet build "$here/samples/YingHub.Moe.Cli" -c Release -v q -nologo >/dev/null
yinghub() { dotnet "$here/samples/YingHub.Moe.Cli/bin/Release/net10.0/yinghub.dll" "$@"; }
base="${2:-$out/base}"
[ -d "$base" ] || yinghub train --preset yinghub-v2 --steps 600 --batch 16 --dropout 0.1 --out "$base" --json | tail -1

# shared settings: 16 sequences per iteration, 48-token responses, 4 epochs of minibatches of 8, a learning rate for a
# 25M-parameter model, and Ziegler's controller (beta from 0.05) with a horizon of 4 iterations' sequences, so that it
# acts within the run. KL_TARGET (default 6 nats per sequence) is the budget; 3 gave a rise within noise (docs/benchmarks.md).
kl_target="${KL_TARGET:-6}"
cat > "$out/rl.json" <<'JSON'
{ "learning_rate": 1e-4, "value_learning_rate": 1e-3, "epochs": 4, "mini_batch_size": 8, "kl_coef": 0.05, "kl_horizon": 64 }
JSON
common=(--checkpoint "$base" --reward shakespeare --response-tokens 48 --iterations 120 --kl-target "$kl_target" --config "$out/rl.json" --json)
yinghub rlhf "${common[@]}" --algorithm ppo --batch 16 --out "$out/ppo" | tail -1
yinghub rlhf "${common[@]}" --algorithm grpo --batch 4 --group 4 --out "$out/grpo" | tail -1
# best-of-n on the same held-out prompts: KL log n - (n-1)/n = 0.19, 0.64, 1.83, 2.50 nats
for n in 2 4 16 32; do yinghub best-of-n --checkpoint "$base" --reward shakespeare --response-tokens 48 --n "$n" --json | tail -1; done
