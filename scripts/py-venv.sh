#!/usr/bin/env bash
# The Python test environment: a venv at ~/.cache/igcam/py-venv (or $IGCAM_PY_VENV) with
# python/requirements-test.txt installed, from PyPI only. It is made again only when that file
# changes (its hash is kept beside it), so a warm CI run pays nothing. PyTorch's wheel pulls
# NVIDIA's libraries (about 4 GB; `import torch` needs them even on a CPU-only machine).
# Prints the venv's path on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
# A wheel pip builds from source must not meet CI's clippy wrapper (.ci/run).
unset RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS
venv="${IGCAM_PY_VENV:-$HOME/.cache/igcam/py-venv}"
reqs=python/requirements-test.txt
want="$( (python3 --version; cat "$reqs") | sha256sum | cut -d' ' -f1)"
mkdir -p "$(dirname "$venv")"
# Under a lock: CI starts this early in the background, and the test script's own call then
# waits for it instead of installing a second time.
(
  flock 9
  if [ "$(cat "$venv/.requirements-sha256" 2>/dev/null)" != "$want" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    timeout 1800 "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$reqs" >&2
    echo "$want" >"$venv/.requirements-sha256"
  fi
) 9>"$venv.lock"
echo "$venv"
