#!/usr/bin/env bash
# The real-browser end-to-end test: builds dist/ (scripts/web-build.sh), makes the reference
# map with the native CLI, then drives Debian's headless Chromium through web/e2e/e2e.mjs on
# the WebGPU path and on the CPU path. Needs `apt-get install chromium` (never a downloaded
# browser). Screenshots go to web/e2e/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/phases.sh
if [ ! -x /usr/bin/chromium ]; then
  echo "web-test: /usr/bin/chromium is missing: apt-get install chromium" >&2
  exit 2
fi
./scripts/web-build.sh
work="$(mktemp -d)"
# The CLI reference map, from the binary `cargo test --release --all-targets` built: a plain
# `cargo run` would resolve features without the dev-dependencies and rebuild the whole
# Burn/cubecl stack with new hashes (> 10 min on a cold machine). This build is a no-op when the
# tests have already run.
cargo test --release --all-targets --no-run --quiet
cli="${CARGO_TARGET_DIR:-target}/release/igcam-wgpu"
"$cli" explain assets/images/chelsea.png --method igcam --steps 16 \
  --backend cpu --quiet --out "$work/out" --json "$work/cli.json"
"$cli" explain assets/images/chelsea.png --method ig --steps 16 \
  --backend cpu --quiet --out "$work/out_ig" --json "$work/cli_ig.json"
# The native time of the page's m = 50 run (the top-5 in one request, as the page does), on this
# machine, for timings.json.
"$cli" explain assets/images/chelsea.png --method igcam --steps 50 --target top5 \
  --backend cpu --quiet --out "$work/out50" --json "$work/cli50.json"
phase "browser test" node web/e2e/e2e.mjs dist "$work/cli.json" "$work/cli50.json" \
  "$work/cli_ig.json" web/e2e/artifacts
