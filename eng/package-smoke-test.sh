#!/usr/bin/env bash
# Packs the library packages (src/) and builds, runs and publishes a throwaway console app that references only the packed
# facade (YingHub.Moe) and TorchSharp-cpu, as an application developer would. On Linux with an older libstdc++
# (Debian 12, Ubuntu 22.04) this proves the packaged libstdc++ compat step: the app must print "ok" after build and
# after publish. Uses the machine's NuGet sources plus the local pack folder; leaves nothing in the repository.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# the libraries only: the CLI tool packs on its own (eng/tool-smoke-test.sh)
for project in "$repo"/src/*/*.csproj; do dotnet pack "$project" -c Release -o "$work/pack" -nologo -v q; done
mkdir "$work/app"
cd "$work/app"
dotnet new console -f net10.0 -n App -o . >/dev/null
cat > nuget.config <<XML
<?xml version="1.0" encoding="utf-8"?>
<configuration><packageSources><add key="local" value="$work/pack" /></packageSources></configuration>
XML
version="$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' "$repo/Directory.Build.props")"
dotnet add package YingHub.Moe --version "$version" >/dev/null
dotnet add package TorchSharp-cpu --version 0.107.0 >/dev/null
cat > Program.cs <<'CS'
using TorchSharp;
using YingHub.Moe.Building;
using YingHub.Moe.Core.Modules;
using var model = MoeModelBuilder.FromPreset("tiny").Layers(1).Build();
using var output = model.call(new CausalLMInput(torch.zeros(1, 8, dtype: torch.ScalarType.Int64)));
Console.WriteLine($"ok: logits {string.Join("x", output.Logits.shape)}, {model.ParameterCount} parameters");
CS
dotnet build -nologo | grep -E "YingHub.Moe libstdc|error" || true
dotnet run --no-build
dotnet publish -c Release -o "$work/publish" -nologo | grep -E "YingHub.Moe libstdc|error" || true
"$work/publish/App"
