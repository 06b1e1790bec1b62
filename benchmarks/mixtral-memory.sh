#!/usr/bin/env bash
# The largest mixtral-preset model that trains on this machine: a few fp32 training steps (AdamW, everything a real
# run does, no checkpoint) of each size, with the process's peak resident memory. A size that does not fit is killed
# by the kernel (or libtorch fails to allocate); the script reports it and goes on.
# Usage: benchmarks/mixtral-memory.sh [EXPERTS ...]     (default: 8 12 14 16; hidden 1024, 8 layers, 16/4 heads, H 3584)
# Takes a few minutes per size; run it with nothing else on the machine. docs/scaling.md has the results.
set -uo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
dotnet build "$here/benchmarks/YingHub.Moe.Benchmarks" -c Release -v q -nologo >/dev/null || exit 1
# a size that does not fit should be the one the kernel kills, not whatever else runs
choom=""; command -v choom >/dev/null && choom="choom -n 1000 --"
experts=("$@")
[ ${#experts[@]} -gt 0 ] || experts=(8 12 14 16)
for e in "${experts[@]}"; do
  out=$(${choom:-} dotnet "$here/benchmarks/YingHub.Moe.Benchmarks/bin/Release/net10.0/YingHub.Moe.Benchmarks.dll" throughput --preset mixtral \
    --embd 1024 --heads 16 --kv-heads 4 --layers 8 --intermediate 3584 --experts "$e" --batch 4 --block 256 \
    --warmup 1 --steps 2 --log-interval 1 2>&1)
  code=$?
  if [ $code -eq 0 ]; then echo "$out" | tail -1; else echo "{\"experts\": $e, \"exit_code\": $code, \"error\": $(echo "$out" | tail -3 | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))')}"; fi
done
