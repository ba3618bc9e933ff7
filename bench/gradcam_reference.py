#!/usr/bin/env python3
"""Time pytorch-grad-cam's own classes (`grad-cam` on PyPI) on the torchvision model igcam's ONNX
export came from, for `igcam-wgpu bench --methods ...` to be compared with, method by method:

    python3 models/export_torchvision.py resnet50 /tmp/resnet50.onnx --random
    igcam-wgpu bench --model /tmp/resnet50.onnx --backend cpu --methods ablationcam,eigencam --reps 3
    python3 bench/gradcam_reference.py resnet50 --methods ablationcam,eigencam --reps 3

Same protocol as `bench`: the default layer (ResNet-50 layer4 / VGG-16 features.29), the top-1
class (or --top5), one warm-up run, then --reps timed runs of `cam(input_tensor, targets)` (its
maps come back to the host as NumPy arrays). Threads: torch's default. Prints the JSON shape of
`bench --json` (`results[].method`, `median_ms`).
"""
import argparse
import json
import time

import numpy as np
import torch
import torchvision
import pytorch_grad_cam
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

LAYERS = {"resnet50": "layer4", "vgg16": "features.29"}
# igcam's method table name -> pytorch-grad-cam class (tests/reference/make_method_fixtures.py
# takes the same table).
CLASSES = {
    "gradcam": pytorch_grad_cam.GradCAM,
    "gradcampp": pytorch_grad_cam.GradCAMPlusPlus,
    "xgradcam": pytorch_grad_cam.XGradCAM,
    "layercam": pytorch_grad_cam.LayerCAM,
    "hirescam": pytorch_grad_cam.HiResCAM,
    "gradcam-elementwise": pytorch_grad_cam.GradCAMElementWise,
    "eigencam": pytorch_grad_cam.EigenCAM,
    "eigengradcam": pytorch_grad_cam.EigenGradCAM,
    "ablationcam": pytorch_grad_cam.AblationCAM,
    "scorecam": pytorch_grad_cam.ScoreCAM,
    "kpcacam": pytorch_grad_cam.KPCA_CAM,
    "fem": pytorch_grad_cam.FEM,
    "randomcam": pytorch_grad_cam.RandomCAM,
    "finercam": pytorch_grad_cam.FinerCAM,
    "fullgrad": pytorch_grad_cam.FullGrad,
    "shapleycam": pytorch_grad_cam.ShapleyCAM,
}


def call(cam, name, x, target):
    """One map of `target`: Finer-CAM picks its own comparison target from `target_idx`."""
    if name == "finercam":
        return cam(input_tensor=x, target_idx=target)
    return cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("arch", choices=sorted(LAYERS))
    p.add_argument("--methods", default="gradcam,ablationcam")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--top5", action="store_true", help="explain the five best classes (one call each)")
    p.add_argument("--json")
    args = p.parse_args()
    torch.manual_seed(0)
    model = getattr(torchvision.models, args.arch)(weights=None).eval()
    layer = dict(model.named_modules())[LAYERS[args.arch]]
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        ranked = model(x)[0].argsort(descending=True).tolist()
    targets = ranked[:5] if args.top5 else ranked[:1]
    results = []
    for name in args.methods.split(","):
        with CLASSES[name](model=model, target_layers=[layer]) as cam:
            if hasattr(cam, "batch_size"):
                cam.batch_size = 32
            run = lambda: [call(cam, name, x, t) for t in targets]
            run()
            times = []
            for _ in range(args.reps):
                start = time.perf_counter()
                run()
                times.append((time.perf_counter() - start) * 1000)
        times.sort()
        results.append({"method": name, "maps": len(targets), "median_ms": float(np.median(times))})
        print(f"| {name} | {len(targets)} | {np.median(times):.1f} |", flush=True)
    report = {"tool": f"pytorch-grad-cam ({torch.__version__})", "model": args.arch, "targets": targets,
              "results": results}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
