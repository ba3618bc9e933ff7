#!/usr/bin/env bash
# igcam against PyTorch and against the best inference engine on this machine, in one go:
#
#   scripts/bench-vs-torch.sh [resnet50|vgg16|lite0] [--steps N] [--rounds R] [--methods LIST]
#                             [--threads T] [--python PY]
#
# Exports the torchvision model with seeded random weights (cached under ~/.cache/igcam/models;
# `lite0` is the embedded EfficientNet-Lite0, which has no PyTorch reference), then alternates,
# for R rounds of 3 timed repetitions each so that all three see the same machine load:
# - `igcam-wgpu bench --backend cpu` (whole explanations: every forward and gradient),
# - `bench/torch_reference.py` (the same model, layer, path and chunk size in PyTorch),
# - `bench/ort_reference.py` (onnxruntime's bare forward passes of the same ONNX file: as many
#   as the path has steps, in the same chunks: the floor for a method with that many steps).
# Prints the CPU and its ISA, then the medians over all repetitions and the ratios (below 1:
# igcam is faster). Needs python3 with torch, torchvision and onnxruntime (--python, or
# ~/.cache/igcam/bench-venv when it exists). IGCAM_CPU_ISA=avx2 caps igcam's own kernels.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=resnet50 steps=50 rounds=3 methods=igcam,gradcam threads=""
cache="${IGCAM_CACHE:-$HOME/.cache/igcam}"
python=python3
[ -x "$cache/bench-venv/bin/python" ] && python="$cache/bench-venv/bin/python"
usage="usage: $0 [resnet50|vgg16|lite0] [--steps N] [--rounds R] [--methods LIST] [--threads T] [--python PY]"
while [ $# -gt 0 ]; do
  case "$1" in
    resnet50|vgg16|lite0) arch="$1" ;;
    --steps) steps="$2"; shift ;;
    --rounds) rounds="$2"; shift ;;
    --methods) methods="$2"; shift ;;
    --threads) threads="$2"; shift ;;
    --python) python="$2"; shift ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
  shift
done
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
if [ "$arch" = lite0 ]; then
  model="models/efficientnet-lite0.onnx"
  model_args=() target=(--target top5)
else
  model="$cache/models/$arch-random.onnx"
  if [ ! -f "$model" ]; then
    mkdir -p "$(dirname "$model")"
    "$python" models/export_torchvision.py "$arch" "$model" --random
  fi
  model_args=(--model "$model") target=()
fi
# The same build as the tests (no second build of the Burn stack with other features).
cargo test --release --all-targets --no-run --quiet
bin="$CARGO_TARGET_DIR/release/igcam-wgpu"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
thread_args=() py_threads=()
if [ -n "$threads" ]; then thread_args=(--threads "$threads"); py_threads=(--threads "$threads"); fi
for r in $(seq 1 "$rounds"); do
  echo "round $r/$rounds" >&2
  "$bin" bench "${model_args[@]}" "${target[@]}" --backend cpu --steps "$steps" --reps 3 \
    --methods "$methods" "${thread_args[@]}" --json "$work/igcam-$r.json" >/dev/null
  if [ "$arch" != lite0 ]; then
    "$python" bench/torch_reference.py "$arch" --steps "$steps" --reps 3 --methods "$methods" \
      "${py_threads[@]}" --json "$work/torch-$r.json" >/dev/null
  fi
  "$python" bench/ort_reference.py "$model" --forwards "$steps" --batch 10 --reps 3 \
    "${py_threads[@]}" --json "$work/ort-$r.json" >/dev/null
done
isa="$(grep -m1 -ow 'avx512f' /proc/cpuinfo || grep -m1 -ow 'avx2' /proc/cpuinfo || uname -m)"
cpu="$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
"$python" - "$work" "$rounds" "$arch" "$steps" "$cpu" "$isa" "${IGCAM_CPU_ISA:-widest}" <<'PY'
import json, os, statistics, sys
work, rounds, arch, steps, cpu, isa, cap = sys.argv[1:8]
rounds = int(rounds)
def medians(tool):
    per, dev = {}, None
    for r in range(1, rounds + 1):
        path = f"{work}/{tool}-{r}.json"
        if not os.path.exists(path):
            return {}, None
        rep = json.load(open(path))
        dev = rep["device"]
        for res in rep["results"]:
            # Each round's median of 3 stands for its 3 repetitions.
            per.setdefault(res["method"], []).append(res["median_ms"])
    return {m: statistics.median(v) for m, v in per.items()}, dev
ig, ig_dev = medians("igcam")
pt, pt_dev = medians("torch")
ort, ort_dev = medians("ort")
ort_ms = next(iter(ort.values()))
print(f"{arch}, m = {steps}, {rounds} rounds x 3 reps, CPU: {cpu} ({os.cpu_count()} CPUs, {isa}; "
      f"igcam's kernels: {cap})")
print(f"igcam: {ig_dev}; PyTorch: {pt_dev}; onnxruntime: {ort_dev}")
print(f"onnxruntime, {steps} bare forwards in chunks of 10: {ort_ms:.1f} ms")
print("| method | igcam ms | PyTorch ms | igcam / PyTorch | igcam / ORT forwards |")
print("|---|---|---|---|---|")
for m in ig:
    torch_ms = f"{pt[m]:.1f}" if m in pt else "-"
    ratio = f"{ig[m] / pt[m]:.2f}" if m in pt else "-"
    # Only a method that walks the path runs m forwards; Grad-CAM runs one.
    per_ort = f"{ig[m] / ort_ms:.2f}" if m.split()[0] in ("igcam", "ig") else "-"
    print(f"| {m} | {ig[m]:.1f} | {torch_ms} | {ratio} | {per_ort} |")
PY
