#!/usr/bin/env bash
# Training throughput and KV-cache decoding of two builds of the library, alternating, in one sitting on one machine.
# Usage: benchmarks/before-after.sh BEFORE_CHECKOUT [ROUNDS]
#   BEFORE_CHECKOUT is another clone or worktree of this repository at the commit to compare with, e.g.
#     git worktree add --detach ../before 63ae11a && benchmarks/before-after.sh ../before
#   Each round runs, before then after: decode (yinghub-v2, 3 rounds of 256 tokens), training throughput at the makemoe
#   shape (60 steps) and at the yinghub-v2 shape (10 steps after 5 warm-up steps). Nothing else may run meanwhile (two
#   libtorch processes on 2 cores slow each other ~5x). Prints one JSON line per run, prefixed with its build.
set -euo pipefail
after="$(cd "$(dirname "$0")/.." && pwd)"
before="$(cd "${1:?usage: $0 BEFORE_CHECKOUT [ROUNDS]}" && pwd)"
rounds="${2:-2}"
corpus="$after/../shared/data/tinyshakespeare.txt"
for tree in "$before" "$after"; do dotnet build "$tree/benchmarks/YingHub.Moe.Benchmarks" -c Release -v q -nologo >/dev/null; done
run() { # build label, mode, arguments
  local tree="$1" label="$2"; shift 2
  printf '%s ' "$label"
  dotnet "$tree/benchmarks/YingHub.Moe.Benchmarks/bin/Release/net10.0/YingHub.Moe.Benchmarks.dll" "$@" | tail -1
}
for ((r = 1; r <= rounds; r++)); do
  for pair in "before:$before" "after:$after"; do
    label="${pair%%:*}"; tree="${pair#*:}"
    run "$tree" "$label" decode --preset yinghub-v2 --rounds 3
    run "$tree" "$label" throughput --data "$corpus" --preset makemoe --batch 16 --block 32 --steps 60
    run "$tree" "$label" throughput --data "$corpus" --preset yinghub-v2 --batch 32 --block 128 --steps 10 --warmup 5 --log-interval 5
  done
done
