#!/usr/bin/env bash
# Runs every test: operator checks, numerics vs PyTorch on the CPU and on wgpu, the CLI, the
# Python package (pytest), and the web page in headless Chromium. The wgpu tests need a Vulkan/Metal/DX12 adapter; on a
# machine without a GPU install the software one first (`apt-get install mesa-vulkan-drivers`);
# the browser test needs `chromium` and a wasm32 toolchain (see scripts/web-build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/phases.sh
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
phase "native tests" cargo test --release --all-targets "$@"
# The hostile inputs again, with panics that abort the process (as in the browser).
phase "hostile inputs, panic = abort" ./scripts/hostile-abort.sh
phase "doctests" cargo test --release --doc
phase "docs/scale.md: Slurm script and Kubernetes manifest" ./scripts/check-scale-docs.sh
# Each kernel bench once (criterion's --test): the benches compile and run; speed is measured by
# `cargo bench --features bench-kernels --bench kernels`, not here.
phase "kernel benches (one run each)" cargo bench --features bench-kernels --bench kernels -- --test
# The Python package: built with maturin into a cached venv, checked against pytorch-grad-cam,
# Captum and the CLI (IGCAM_SKIP_PYTHON=1 skips it).
if [ "${IGCAM_SKIP_PYTHON:-0}" != 1 ]; then
  ./scripts/py-test.sh
fi
# The web page in a real browser (WebGPU and CPU paths); IGCAM_SKIP_WEB=1 skips it.
if [ "${IGCAM_SKIP_WEB:-0}" != 1 ]; then
  ./scripts/web-test.sh
fi
