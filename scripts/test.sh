#!/usr/bin/env bash
# Runs every test: operator checks, numerics vs PyTorch on the CPU and on wgpu, and the CLI.
# The wgpu tests need a Vulkan/Metal/DX12 adapter; on a machine without a GPU install the
# software one first: `sudo apt-get install mesa-vulkan-drivers`.
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
cargo test --release --all-targets "$@"
cargo test --release --doc
