#!/usr/bin/env bash
# tests/hostile.rs against a CLI whose panics abort (`-C panic=abort`, as the browser build's
# `wasm-release` profile has): any panic left in the engine would kill the process with SIGABRT
# instead of being caught at the binary's edge, and the test refuses a signal. Only the binary
# crate is compiled with the flag (its dependencies keep their unwind build, which an abort
# binary links as std does), then the normal binary is restored.
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-target}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
cargo rustc --release --quiet --bin igcam-wgpu -- -C panic=abort
cp "$target_dir/release/igcam-wgpu" "$out/igcam-wgpu"
cargo build --release --quiet --bin igcam-wgpu
IGCAM_BIN="$out/igcam-wgpu" cargo test --release --test hostile "$@"
