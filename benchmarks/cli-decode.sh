#!/usr/bin/env bash
# Decoding speed as a user sees it against the `decode` harness, in one sitting: `yinghub generate --tokens N --json`
# on a checkpoint (a new process each time: cold JIT, model load excluded from the clock, which starts at the first
# decoding step), three times with the KV cache and once without, next to the harness's plain loop (warm, greedy,
# untrained weights of the same preset). Extra environment settings to compare can be given as VAR=VALUE arguments
# after the checkpoint; each is a separate set of CLI runs.
# Usage: benchmarks/cli-decode.sh CHECKPOINT PRESET [TOKENS] [VAR=VALUE ...]. Nothing else should run.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
checkpoint="${1:?usage: $0 CHECKPOINT PRESET [TOKENS] [VAR=VALUE ...]}"; preset="${2:?preset}"; tokens="${3:-256}"
shift 3 || shift $#
dotnet build "$here/samples/YingHub.Moe.Cli" -c Release -v q -nologo >/dev/null
dotnet build "$here/benchmarks/YingHub.Moe.Benchmarks" -c Release -v q -nologo >/dev/null
cli="$here/samples/YingHub.Moe.Cli/bin/Release/net10.0/yinghub.dll"
# one JSON line per run: the CLI's own figures plus the whole process's wall time (start-up and model load included)
gen() { local t0 t1 line; t0=$(date +%s.%N)
  line=$("$@" dotnet "$cli" generate --checkpoint "$checkpoint" --tokens "$tokens" --seed 1 --json "${extra[@]}" | tail -1); t1=$(date +%s.%N)
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d.pop("text"); d["process_s"]=round(float(sys.argv[3])-float(sys.argv[2]),2); print(json.dumps(d))' "$line" "$t0" "$t1"; }
for setting in "" "$@"; do
  env_args=(env); [ -n "$setting" ] && env_args+=("$setting")
  echo "# CLI ${setting:-(defaults)}"
  extra=(); for i in 1 2 3; do gen "${env_args[@]}"; done
  extra=(--no-cache); gen "${env_args[@]}"
done
echo "# harness"
h="$here/benchmarks/YingHub.Moe.Benchmarks/bin/Release/net10.0/YingHub.Moe.Benchmarks.dll"
dotnet "$h" decode --preset "$preset" --tokens "$tokens" --rounds 3
echo "# harness on the checkpoint's weights"
dotnet "$h" decode --checkpoint "$checkpoint" --tokens "$tokens" --rounds 3
