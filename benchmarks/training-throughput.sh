#!/usr/bin/env bash
# Training throughput of YingHub.Moe against the makeMoE PyTorch reference, in one sitting on one machine.
# Usage: benchmarks/training-throughput.sh MAKEMOE_DIR [CORPUS]
#   MAKEMOE_DIR holds makeMoE.py (AviSoori1x/makeMoE; never copied into this repository).
#   CORPUS defaults to ../shared/data/tinyshakespeare.txt. The reference needs Debian's python3-torch
#   (see the header of ../shared/bench/makemoe_throughput.py). Prints one JSON line per run; docs/benchmarks.md has the numbers.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
makemoe="${1:?usage: $0 MAKEMOE_DIR [CORPUS]}"
corpus="${2:-$here/../shared/data/tinyshakespeare.txt}"
reference="$here/../shared/bench/makemoe_throughput.py"
dotnet build "$here/benchmarks/YingHub.Moe.Benchmarks" -c Release -v q -nologo >/dev/null
ours() { dotnet "$here/benchmarks/YingHub.Moe.Benchmarks/bin/Release/net10.0/YingHub.Moe.Benchmarks.dll" throughput --data "$corpus" "$@"; }

# the makemoe shape: batch 16, block 32, n_embd 128, 8 heads, 8 layers, 8 experts, top-2
/usr/bin/python3 "$reference" "$makemoe" "$corpus" --steps 60
ours --preset makemoe --batch 16 --block 32 --steps 60
ours --preset makemoe --batch 16 --block 32 --steps 60 --unfused
ours --preset makemoe --batch 16 --block 32 --steps 60 --precision bf16
/usr/bin/python3 "$reference" "$makemoe" "$corpus" --steps 60   # again: the machine's speed drifts within a sitting

# the yinghub-v2 shape: batch 32, block 128, n_embd 192, 6 heads, 8 layers, 6 experts, char tokens
/usr/bin/python3 "$reference" "$makemoe" "$corpus" --batch 32 --block 128 --embd 192 --heads 6 --layers 8 --experts 6 --steps 10
ours --preset yinghub-v2 --batch 32 --block 128 --steps 10 --warmup 5 --log-interval 5
ours --preset yinghub-v2 --batch 32 --block 128 --steps 10 --warmup 5 --log-interval 5 --unfused
ours --preset yinghub-v2 --batch 32 --block 128 --steps 10 --warmup 5 --log-interval 5 --precision bf16
# the same model as the reference at that shape (makeMoE's simple ReLU experts, no deep ones): equal FLOPs per token
ours --preset makemoe --batch 32 --block 128 --embd 192 --heads 6 --experts 6 --steps 10 --warmup 5 --log-interval 5
