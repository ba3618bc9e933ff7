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
# The CLI reference map, from the plain release binary (the one `cargo run --release` builds:
# the test build resolves the same features, so this is a no-op after the tests), and the
# ResNet-50 for the page's model-loading check (examples/resnet50_onnx.rs: seeded random
# weights; PyTorch is not installed here).
cargo build --release --quiet --bin igcam-wgpu --example resnet50_onnx
target_dir="${CARGO_TARGET_DIR:-target}"
cli="$target_dir/release/igcam-wgpu"
"$target_dir/release/examples/resnet50_onnx" "$work/resnet50.onnx"
"$cli" explain assets/images/chelsea.png --method igcam --steps 16 \
  --backend cpu --quiet --out "$work/out" --json "$work/cli.json"
"$cli" explain assets/images/chelsea.png --method ig --steps 16 \
  --backend cpu --quiet --out "$work/out_ig" --json "$work/cli_ig.json"
# The native time of the page's m = 50 run (the top-5 in one request, as the page does), on this
# machine, for timings.json.
"$cli" explain assets/images/chelsea.png --method igcam --steps 50 --target top5 \
  --backend cpu --quiet --out "$work/out50" --json "$work/cli50.json"
# One model of each task (a ViT classifier, a segmenter, a detector), IG-CAM m = 4 and Grad-CAM
# for every target the page explains: the top-5, every class present, every detection.
mkdir -p "$work/tasks"
for task in vit_opset17:top5 lraspp_opset17:present yolov8_opset17:all; do
  "$cli" explain assets/images/chelsea.png --model "tests/fixtures/zoo/${task%%:*}.onnx" \
    --method igcam,gradcam --steps 4 --target "${task##*:}" --backend cpu --quiet \
    --out "$work/tasks/out" --json "$work/tasks/${task%%:*}.json"
done
# eval's HTML report, opened from disk: two methods on the mini set, the paper's metrics and
# three of Quantus's (9 metric charts), MPRT over the top 3 layers for its sanity plot.
"$cli" eval --data tests/data/voc-mini --classes tests/data/voc-mini/classes.txt \
  --methods igcam,gradcam --steps 8 --curve-steps 4 --metrics sparseness,top_k,mprt \
  --mprt-layers 3 --backend cpu --quiet --out "$work/eval" --report "$work/eval/report.html" >/dev/null
phase "report in the browser" node web/e2e/report.mjs "$work/eval/report.html" web/e2e/artifacts 9
phase "browser test" node web/e2e/e2e.mjs dist "$work/cli.json" "$work/cli50.json" \
  "$work/cli_ig.json" web/e2e/artifacts "$work/tasks" "$work/resnet50.onnx"
