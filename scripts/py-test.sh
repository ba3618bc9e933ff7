#!/usr/bin/env bash
# The Python package's tests (python/): the test venv (scripts/py-venv.sh, cached), the package
# installed into it as a user installs it (`pip install ./python`, but with the venv's pinned
# maturin instead of a fresh download per run: `--no-build-isolation`); maturin builds the
# wheel in the shared target folder, so beyond `cargo build --release` only PyO3 and the binding
# compile. Then `pytest python/tests` (peers, the CLI's JSON and eval, errors, threads, memory,
# the quickstart notebook). IGCAM_CLI: the CLI binary the maps are compared with.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/phases.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
venv_path="$(mktemp)"
trap 'rm -f "$venv_path"' EXIT
phase "python venv" bash -c './scripts/py-venv.sh >"$1"' _ "$venv_path"
venv="$(tail -1 "$venv_path")"
phase "CLI for the JSON comparison" cargo build --release --bin igcam-wgpu
# The build backend runs `maturin` from PATH.
export PATH="$venv/bin:$PATH"
phase "pip install ./python" "$venv/bin/python" -m pip install -q --disable-pip-version-check \
  --force-reinstall --no-deps --no-build-isolation ./python
export IGCAM_CLI="${IGCAM_CLI:-$CARGO_TARGET_DIR/release/igcam-wgpu}"
phase "pytest python/tests" "$venv/bin/python" -m pytest -q -p no:cacheprovider python/tests
