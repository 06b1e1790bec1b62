#!/usr/bin/env bash
# Requests per second and time to first token of `yinghub serve` for 1, 4 and 16 concurrent clients, on each
# checkpoint given: starts the real server on a loopback port, runs the benchmarks' serve-load mode against it (streamed
# completions of 64 tokens, 32 requests per level, after one warm-up request), stops the server.
# Usage: benchmarks/serve-load.sh CHECKPOINT... (e.g. runs/demo for tiny, a yinghub-v2 run). Nothing else should run.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
[ $# -ge 1 ] || { echo "usage: $0 CHECKPOINT..." >&2; exit 2; }
dotnet build "$here/samples/YingHub.Moe.Cli" -c Release -v q -nologo >/dev/null
dotnet build "$here/benchmarks/YingHub.Moe.Benchmarks" -c Release -v q -nologo >/dev/null
port=18080
for checkpoint in "$@"; do
  dotnet "$here/samples/YingHub.Moe.Cli/bin/Release/net10.0/yinghub.dll" serve --checkpoint "$checkpoint" --port $port > /tmp/serve-load.$$.log 2>&1 &
  server=$!
  trap 'kill $server 2>/dev/null || true' EXIT
  until grep -q "listening on" /tmp/serve-load.$$.log; do kill -0 $server || { cat /tmp/serve-load.$$.log; exit 1; }; sleep 0.5; done
  dotnet "$here/benchmarks/YingHub.Moe.Benchmarks/bin/Release/net10.0/YingHub.Moe.Benchmarks.dll" serve-load --url "http://127.0.0.1:$port"
  kill -TERM $server; wait $server || true
  rm -f /tmp/serve-load.$$.log
done
