#!/usr/bin/env bash
# YingHub-v2's training recipe against the default recipe on the same preset: 1,000 steps of 16 x 128 char tokens of
# Tiny Shakespeare each, then the same held-out evaluation for both (100 batches of 16 x 128 from the last 10%).
# Usage: benchmarks/recipe-yinghub-v2.sh OUT_DIR [--ablate [TRICK ...]]
#   --ablate also trains the recipe once without each of its tricks (seven more runs, or the TRICKs named), to say
#   which one helps. Runs already in OUT_DIR are evaluated again, not retrained.
# Every run leaves its metrics (metrics.jsonl) and plots (loss.png, ...) in OUT_DIR/<run>.cache. docs/benchmarks.md has the numbers.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:?usage: $0 OUT_DIR [--ablate]}"
mkdir -p "$out"
dotnet build "$here/samples/YingHub.Moe.Cli" -c Release -v q -nologo >/dev/null
# a copy of the build, so a rebuild while the runs go on cannot swap assemblies under them
rm -rf "$out/cli" && cp -r "$here/samples/YingHub.Moe.Cli/bin/Release/net10.0" "$out/cli"
yinghub() { dotnet "$out/cli/yinghub.dll" "$@"; }
recipe="$here/samples/recipes/yinghub-v2.json"

run() { # name, then train arguments
  local name="$1"; shift
  [ -d "$out/$name" ] || yinghub train "$@" --out "$out/$name" --json | tail -1
  echo "{\"run\": \"$name\", \"eval\": $(yinghub eval --checkpoint "$out/$name" --batches 100 --batch 16 --json | tail -1)}"
}

run default --preset yinghub-v2 --steps 1000 --batch 16 --block 128
run recipe --config "$recipe"

if [ "${2:-}" = "--ablate" ]; then
  tricks=("${@:3}")
  [ ${#tricks[@]} -gt 0 ] || tricks=(schedule module_gradient_clip gradient_clip_schedule token_masking early_stopping adaptive_top_k utilization_kl_coef)
  # the recipe without one trick each: a copy of the file with that setting removed
  for trick in "${tricks[@]}"; do
    python3 - "$recipe" "$out/no_$trick.json" "$trick" <<'PY'
import json, sys
src, dst, trick = sys.argv[1:]
r = json.load(open(src))
if trick == "utilization_kl_coef": r["model"][trick] = 0.0
else: r["trainer"].pop(trick)
json.dump(r, open(dst, "w"), indent=2)
PY
    run "no_$trick" --config "$out/no_$trick.json"
  done
fi
