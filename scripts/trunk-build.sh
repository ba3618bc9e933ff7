#!/usr/bin/env bash
# The Trunk path, checked: installs Trunk once (scripts/wasm-env.sh), runs `trunk build
# --release` into a temporary folder (or $1) with the toolchain and target dir
# scripts/web-build.sh uses (so the wasm build itself is cached), and checks that it gives the
# dist/ layout of scripts/web-build.sh but the threaded build: index.html, app.js, threads.js,
# explain-worker.js, sw.js, style.css, igcam-web.js, igcam-web_bg.wasm, the model, its labels
# and images/. CI runs it so that the developer's loop (`trunk serve`) cannot rot.
#
#   scripts/trunk-build.sh [OUT]           # install Trunk if needed, build, check the layout
#   scripts/trunk-build.sh --install-only  # only install Trunk (CI starts that early)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/phases.sh
source scripts/wasm-env.sh
if [ "${1:-}" = --install-only ]; then
  phase "trunk install" install_trunk
  exit 0
fi
out="${1:-$(mktemp -d)}"
phase "web tool installs" install_tools
phase "trunk install" install_trunk
wasm_toolchain
# No lock: cargo's own lock on the shared target dir serialises the builds, and the output goes
# to its own folder, so the browser test's web build need not wait for this one.
phase "web crate fetch" fetch_crates
export TRUNK_SKIP_VERSION_CHECK=true
phase "trunk build" trunk build --release --offline --dist "$out"
missing=()
for f in index.html app.js threads.js explain-worker.js sw.js style.css igcam-web.js \
  igcam-web_bg.wasm efficientnet-lite0.onnx imagenet_labels.txt images/chelsea.png; do
  [ -s "$out/$f" ] || missing+=("$f")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "trunk-build: $out lacks ${missing[*]} (the dist/ layout of scripts/web-build.sh)" >&2
  exit 1
fi
echo "trunk-build: $out holds the page ($(du -sh "$out" | cut -f1))"
