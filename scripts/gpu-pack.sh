#!/usr/bin/env bash
# Prepares what `scripts/gpu-bench.sh` needs on a GPU machine that has no package registry:
# the release binary twice (the default build, and `--features gpu-tuned` with Burn's fusion and
# autotuning), stripped and xz-compressed, and the Vulkan loader as Debian packages (that
# machine's NVIDIA driver ships the Vulkan ICD but not the loader). Everything lands in
# gpu-carry/ (ignored by git), about 60 MB:
#
#   scripts/gpu-pack.sh            # then carry gpu-carry/ and run scripts/gpu-bench.sh gpu-carry
#
# The tuned build has its own target folder (~/.cache/igcam/target-gpu): a cold build takes
# about 40 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${IGCAM_CACHE:-$HOME/.cache/igcam}"
out=gpu-carry
mkdir -p "$out/debs"
# The default binary: the same build as the tests.
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}" cargo test --release --all-targets --no-run --quiet
cp "${CARGO_TARGET_DIR:-$cache/target}/release/igcam-wgpu" "$out/igcam-wgpu"
CARGO_TARGET_DIR="$cache/target-gpu" cargo build --release --bin igcam-wgpu --features gpu-tuned
cp "$cache/target-gpu/release/igcam-wgpu" "$out/igcam-wgpu-tuned"
for b in igcam-wgpu igcam-wgpu-tuned; do
  strip "$out/$b"
  xz -6 -f "$out/$b"
done
(cd "$out/debs" && apt-get download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
ls -l "$out" "$out/debs"
