#!/usr/bin/env bash
# Packs the CLI as a .NET tool for this platform only, installs it into a temporary tool path as a user would
# (dotnet tool install --tool-path, from the local pack folder) and runs the installed `yinghub`: `doctor` (libtorch
# loads, so the libstdc++ compat step reached the packaged library on Debian 12 / Ubuntu 22.04) and a 20-step `train`
# of the tiny preset on Tiny Shakespeare. Leaves nothing in the repository. Takes a few minutes: the package holds
# libtorch (about 500 MB).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) rid=linux-x64 ;;
  Darwin-arm64) rid=osx-arm64 ;;
  *) echo "tool-smoke-test: libtorch-cpu has no package for $(uname -s)-$(uname -m)" >&2; exit 1 ;;
esac
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
version="$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' "$repo/Directory.Build.props")"
dotnet pack "$repo/samples/YingHub.Moe.Cli" -c Release -o "$work/pack" -p:ToolPackageRuntimeIdentifiers=$rid -nologo -v q
ls -la "$work/pack"
# a nuget.config of its own: the pack folder first, the machine's sources for nothing else (the tool is self-contained)
dotnet tool install YingHub.Moe.Cli --version "$version" --tool-path "$work/tools" --add-source "$work/pack"
cd "$work"
"$work/tools/yinghub" --version
"$work/tools/yinghub" doctor
data="${YINGHUB_DATA_DIR:-$repo/../shared/data}"
YINGHUB_DATA_DIR="$data" "$work/tools/yinghub" train --preset tiny --data tinyshakespeare --steps 20 --batch 4 --block 32 --out "$work/run"
"$work/tools/yinghub" generate --checkpoint "$work/run" --prompt "ROMEO:" --tokens 20 --seed 1
echo "tool-smoke-test: ok ($rid)"
