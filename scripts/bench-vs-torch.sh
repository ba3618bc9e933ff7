#!/usr/bin/env bash
# The Burn/PyTorch speed ratio on this machine, per method, in one go:
#
#   scripts/bench-vs-torch.sh [resnet50|vgg16] [--steps N] [--rounds R] [--methods LIST] [--threads T]
#
# Exports the torchvision model with seeded random weights (cached under ~/.cache/igcam/models),
# then alternates `igcam-wgpu bench --backend cpu` and `bench/torch_reference.py` (the same
# model, layer, path and chunk size) for R rounds of 3 timed repetitions each, so both see the
# same machine load, and prints the medians over all repetitions and their ratio (igcam time /
# PyTorch time: below 1 means igcam is faster). Needs python3 with torch and torchvision.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=resnet50 steps=50 rounds=3 methods=igcam,gradcam threads=""
while [ $# -gt 0 ]; do
  case "$1" in
    resnet50|vgg16) arch="$1" ;;
    --steps) steps="$2"; shift ;;
    --rounds) rounds="$2"; shift ;;
    --methods) methods="$2"; shift ;;
    --threads) threads="$2"; shift ;;
    *) echo "usage: $0 [resnet50|vgg16] [--steps N] [--rounds R] [--methods LIST] [--threads T]" >&2; exit 2 ;;
  esac
  shift
done
cache="${IGCAM_CACHE:-$HOME/.cache/igcam}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
model="$cache/models/$arch-random.onnx"
if [ ! -f "$model" ]; then
  mkdir -p "$(dirname "$model")"
  python3 models/export_torchvision.py "$arch" "$model" --random
fi
# The same build as the tests (no second build of the Burn stack with other features).
cargo test --release --all-targets --no-run --quiet
bin="$CARGO_TARGET_DIR/release/igcam-wgpu"
work="$(mktemp -d)"
thread_args=() torch_threads=()
if [ -n "$threads" ]; then thread_args=(--threads "$threads"); torch_threads=(--threads "$threads"); fi
for r in $(seq 1 "$rounds"); do
  echo "round $r/$rounds" >&2
  "$bin" bench --model "$model" --backend cpu --steps "$steps" --reps 3 --methods "$methods" \
    "${thread_args[@]}" --json "$work/igcam-$r.json" >/dev/null
  python3 bench/torch_reference.py "$arch" --steps "$steps" --reps 3 --methods "$methods" \
    "${torch_threads[@]}" --json "$work/torch-$r.json" >/dev/null
done
python3 - "$work" "$rounds" "$arch" "$steps" <<'PY'
import json, statistics, sys
work, rounds, arch, steps = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def medians(tool):
    per = {}
    for r in range(1, rounds + 1):
        rep = json.load(open(f"{work}/{tool}-{r}.json"))
        for res in rep["results"]:
            # Each round's median of 3 stands for its 3 repetitions.
            per.setdefault(res["method"], []).append(res["median_ms"])
    return {m: statistics.median(v) for m, v in per.items()}, rep["device"]
ig, ig_dev = medians("igcam")
pt, pt_dev = medians("torch")
print(f"{arch}, m = {steps}, {rounds} rounds x 3 reps; igcam: {ig_dev}; PyTorch: {pt_dev}")
print("| method | igcam ms | PyTorch ms | igcam / PyTorch |")
print("|---|---|---|---|")
for m in ig:
    if m in pt:
        print(f"| {m} | {ig[m]:.1f} | {pt[m]:.1f} | {ig[m] / pt[m]:.2f} |")
PY
