#!/usr/bin/env bash
# IG-CAM on a real GPU through wgpu (Vulkan) against PyTorch CUDA, on one machine, one table.
# For an NVIDIA machine with PyTorch and torchvision (the lent H100/H200 boxes: Ubuntu 24.04,
# no package registry), given the folder `scripts/gpu-pack.sh` made:
#
#   scripts/gpu-bench.sh gpu-carry [--steps 50] [--reps 5]
#
# It unpacks the binaries and the Vulkan loader, exports ResNet-50 and VGG-16 with seeded random
# weights, checks each binary's IG-CAM and Grad-CAM maps against PyTorch
# (tests/reference/check_torchvision.py), then times IG-CAM and Grad-CAM at chunks of 10 and 50
# path steps: igcam-wgpu (default build, and with fusion + autotune) and
# bench/torch_reference.py --device cuda (fp32, and with --tf32). Ratios are igcam time /
# PyTorch fp32 time (below 1: igcam is faster).
set -euo pipefail
cd "$(dirname "$0")/.."
carry="${1:?usage: scripts/gpu-bench.sh CARRY_DIR [--steps N] [--reps R]}"
shift
steps=50 reps=5
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps="$2"; shift ;;
    --reps) reps="$2"; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
work="$(mktemp -d)"
echo "work folder: $work"

# The Vulkan loader, unpacked beside the binaries (no root, no apt).
mkdir -p "$work/root"
for deb in "$carry"/debs/*.deb; do dpkg -x "$deb" "$work/root"; done
export LD_LIBRARY_PATH="$work/root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if [ -z "${VK_DRIVER_FILES:-}" ]; then
  for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json \
             /etc/vulkan/icd.d/nvidia_icd.json /usr/local/nvidia/icd.d/nvidia_icd.json; do
    if [ -f "$icd" ]; then export VK_DRIVER_FILES="$icd"; break; fi
  done
fi
echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-<none found>}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$work}"
export XDG_CACHE_HOME="$work/cache"   # the tuned build's autotune cache

bins=()
for b in igcam-wgpu igcam-wgpu-tuned; do
  if [ -f "$carry/$b.xz" ]; then
    xz -dc "$carry/$b.xz" > "$work/$b"
    chmod +x "$work/$b"
    bins+=("$b")
  fi
done
[ "${#bins[@]}" -gt 0 ] || { echo "no igcam-wgpu*.xz in $carry" >&2; exit 2; }

python3 - <<'PY' "$work/photo.png"
import sys
from PIL import Image
im = Image.open("assets/images/coffee.png").convert("RGB")
w, h = im.size
s = min(w, h)
im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)).resize((224, 224)).save(sys.argv[1])
PY

nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
for arch in resnet50 vgg16; do
  python3 models/export_torchvision.py "$arch" "$work/$arch.onnx" --random >/dev/null
  for b in "${bins[@]}"; do
    echo "== $arch, $b: maps against PyTorch (CPU reference), wgpu"
    python3 tests/reference/check_torchvision.py "$arch" "$work/$arch.onnx" "$work/photo.png" \
      --bin "$work/$b" --backend wgpu --steps "$steps" | tee -a "$work/checks.txt"
  done
  for batch in 10 50; do
    for b in "${bins[@]}"; do
      echo "== $arch, $b, batch $batch"
      "$work/$b" bench --model "$work/$arch.onnx" --image "$work/photo.png" --backend wgpu \
        --steps "$steps" --batch "$batch" --reps "$reps" --methods igcam,gradcam \
        --json "$work/$arch-$b-$batch.json"
    done
    for mode in fp32 tf32; do
      echo "== $arch, PyTorch CUDA $mode, batch $batch"
      extra=()
      if [ "$mode" = tf32 ]; then extra=(--tf32); fi
      python3 bench/torch_reference.py "$arch" --device cuda --steps "$steps" --batch "$batch" \
        --reps "$reps" --methods igcam,gradcam "${extra[@]}" --json "$work/$arch-torch-$mode-$batch.json" >/dev/null
    done
  done
done

python3 - "$work" "$steps" "${bins[@]}" <<'PY'
import json, os, sys
work, steps, bins = sys.argv[1], sys.argv[2], sys.argv[3:]
def load(name):
    path = os.path.join(work, name)
    if not os.path.exists(path):
        return None
    return {r["method"]: r["median_ms"] for r in json.load(open(path))["results"]}
print(f"\nIG-CAM / Grad-CAM, m = {steps}, 224x224, random weights; medians in ms; ratio = igcam / PyTorch fp32")
print("| model | batch | method | " + " | ".join(bins) + " | PyTorch fp32 | PyTorch TF32 | " + " | ".join(f"{b} / fp32" for b in bins) + " |")
print("|" + "---|" * (5 + 2 * len(bins)))
for arch in ["resnet50", "vgg16"]:
    for batch in [10, 50]:
        fp32 = load(f"{arch}-torch-fp32-{batch}.json") or {}
        tf32 = load(f"{arch}-torch-tf32-{batch}.json") or {}
        ours = [load(f"{arch}-{b}-{batch}.json") or {} for b in bins]
        for m in ["igcam", "gradcam"]:
            cells = [f"{o.get(m, float('nan')):.1f}" for o in ours]
            ratios = [f"{o.get(m, float('nan')) / fp32.get(m, float('nan')):.2f}" for o in ours]
            print(f"| {arch} | {batch} | {m} | " + " | ".join(cells) +
                  f" | {fp32.get(m, float('nan')):.1f} | {tf32.get(m, float('nan')):.1f} | " + " | ".join(ratios) + " |")
print("\nmap checks (relative L2 against PyTorch):")
print(open(os.path.join(work, "checks.txt")).read())
PY
