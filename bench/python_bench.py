#!/usr/bin/env python3
"""igcam from Python against pytorch-grad-cam and PyTorch in the same process, and the binding's
overhead over the CLI's library call, on one seeded torchvision model (CPU).

    python3 bench/python_bench.py [resnet50] [--steps 50] [--rounds 3] [--reps 3] [--cli PATH]

Each round times, one after the other on the same machine:
  * igcam's Grad-CAM and IG-CAM (m = steps) through `igcam.Explainer.explain` on the photo as a
    uint8 array (so resize, crop and normalisation are inside the timed call, as in the CLI);
  * pytorch-grad-cam's GradCAM on the normalised photo, and IG-CAM as the paper's loop in PyTorch
    (bench/torch_reference.py's: batches of 10 path points, the Grad-CAM map with ReLU at each);
  * the binding's overhead: the same two igcam calls in a child Python process that imports
    igcam alone (in this process PyTorch's idle OpenMP threads compete for the cores), against
    the CLI's `bench` on the same ONNX file, photo, layer and target (its median per method: the
    library's `prepare` + `explain` without Python).
Prints each median over the rounds' medians, and the ratios. Needs torch, torchvision, grad-cam.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

import igcam

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTO = os.path.join(ROOT, "assets", "images", "chelsea.png")
LAYERS = {"resnet50": "layer4", "resnet18": "layer4", "vgg16": "features"}


def median_ms(fn, reps):
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(1000.0 * (time.perf_counter() - start))
    return float(np.median(times))


def binding_only(onnx_path, layer, target, steps, reps):
    """The child's run: igcam's two calls without PyTorch in the process, as JSON."""
    ex = igcam.Explainer(onnx_path, layer=layer, backend="cpu")
    rgb = np.asarray(Image.open(PHOTO).convert("RGB"))
    calls = {"gradcam": lambda: ex.explain(rgb, targets=target, methods="gradcam"),
             "igcam": lambda: ex.explain(rgb, targets=target, methods="igcam", steps=steps)}
    for fn in calls.values():
        fn()
    print(json.dumps({name: median_ms(fn, reps) for name, fn in calls.items()}))


def main():
    if sys.argv[1:2] == ["--binding-only"]:
        onnx_path, layer, target, steps, reps = sys.argv[2:7]
        return binding_only(onnx_path, layer, int(target), int(steps), int(reps))
    import torch
    import torchvision
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    from torchvision import transforms

    p = argparse.ArgumentParser()
    p.add_argument("arch", nargs="?", default="resnet50", choices=sorted(LAYERS))
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--cli", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")),
                                                 "release", "igcam-wgpu"))
    args = p.parse_args()

    torch.manual_seed(0)
    model = getattr(torchvision.models, args.arch)(weights=None).eval()
    layer_module = getattr(model, LAYERS[args.arch])[-1]
    photo = Image.open(PHOTO).convert("RGB")
    rgb = np.asarray(photo)
    prep = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                               transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    x = prep(photo)[None]
    target = int(model(x).argmax())

    folder = tempfile.mkdtemp()
    onnx_path = os.path.join(folder, f"{args.arch}.onnx")
    torch.onnx.export(model, (torch.zeros(1, 3, 224, 224),), onnx_path, dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    probe = igcam.from_torch(model, layer=layer_module, backend="cpu")
    ex = igcam.Explainer(onnx_path, layer=probe.layer, backend="cpu")
    del probe

    store = {}
    layer_module.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    b = torch.from_numpy(igcam_black_baseline())

    def torch_igcam():
        total = 0
        alphas = [i / args.steps for i in range(args.steps)]
        for chunk in [alphas[i:i + 10] for i in range(0, len(alphas), 10)]:
            a = torch.tensor(chunk).view(-1, 1, 1, 1)
            out = model(b + (x - b) * a)
            act = store["a"]
            g = torch.autograd.grad(out[:, target].sum(), act)[0]
            total = total + torch.relu((g.mean(dim=(2, 3), keepdim=True) * act).sum(1)).sum(0)
        return total.detach().numpy()

    grad_cam = GradCAM(model=model, target_layers=[layer_module])
    torch_ig = f"PyTorch IG-CAM m={args.steps} (paper's loop)"
    runs = {
        "igcam Grad-CAM": lambda: ex.explain(rgb, targets=target, methods="gradcam"),
        "pytorch-grad-cam Grad-CAM": lambda: grad_cam(input_tensor=x, targets=[ClassifierOutputTarget(target)]),
        f"igcam IG-CAM m={args.steps}": lambda: ex.explain(rgb, targets=target, methods="igcam", steps=args.steps),
        torch_ig: torch_igcam,
    }
    for fn in runs.values():
        fn()  # warm-up
    results = {name: [] for name in runs}
    for name in ["binding Grad-CAM", f"binding IG-CAM m={args.steps}", "CLI Grad-CAM", f"CLI IG-CAM m={args.steps}"]:
        results[name] = []
    for _ in range(args.rounds):
        for name, fn in runs.items():
            results[name].append(median_ms(fn, args.reps))
        out = os.path.join(folder, "cli.json")
        subprocess.run([args.cli, "bench", "--model", onnx_path, "--layer", ex.layer, "--backend", "cpu",
                        "--image", PHOTO, "--target", str(target), "--methods", "gradcam,igcam",
                        "--steps", str(args.steps), "--reps", str(args.reps), "--json", out],
                       check=True, stdout=subprocess.DEVNULL, timeout=1800)
        rows = {r["method"]: r["median_ms"] for r in json.load(open(out))["results"]}
        results["CLI Grad-CAM"].append(rows["gradcam"])
        results[f"CLI IG-CAM m={args.steps}"].append(rows["igcam"])
        child = subprocess.run([sys.executable, __file__, "--binding-only", onnx_path, ex.layer, str(target),
                                str(args.steps), str(args.reps)], check=True, capture_output=True, text=True,
                               timeout=1800)
        rows = json.loads(child.stdout.strip().splitlines()[-1])
        results["binding Grad-CAM"].append(rows["gradcam"])
        results[f"binding IG-CAM m={args.steps}"].append(rows["igcam"])

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               "unknown CPU") if os.path.exists("/proc/cpuinfo") else "unknown CPU"
    print(f"# {args.arch}, CPU: {cpu}, {os.cpu_count()} cores; torch {torch.__version__} "
          f"({torch.get_num_threads()} threads); {ex.backend}")
    print(f"# medians of {args.rounds} rounds x {args.reps} reps, alternating")
    print("| run | ms (per round) | median |\n|---|---|---|")
    med = {}
    for name, values in results.items():
        med[name] = float(np.median(values))
        print(f"| {name} | {' / '.join(f'{v:.0f}' for v in values)} | {med[name]:.0f} |")
    print(f"Grad-CAM: igcam / pytorch-grad-cam = {med['igcam Grad-CAM'] / med['pytorch-grad-cam Grad-CAM']:.2f}x")
    ig = f"igcam IG-CAM m={args.steps}"
    print(f"IG-CAM: igcam / PyTorch = {med[ig] / med[torch_ig]:.2f}x")
    print(f"binding overhead over the CLI's library call: Grad-CAM "
          f"{100 * (med['binding Grad-CAM'] / med['CLI Grad-CAM'] - 1):+.1f} %, IG-CAM "
          f"{100 * (med[f'binding IG-CAM m={args.steps}'] / med[f'CLI IG-CAM m={args.steps}'] - 1):+.1f} %")


def igcam_black_baseline():
    """The black image through ImageNet's normalisation, [1, 3, 224, 224] float32."""
    black = (np.zeros(3, np.float32) - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    return np.broadcast_to(black.astype(np.float32).reshape(1, 3, 1, 1), (1, 3, 224, 224)).copy()


if __name__ == "__main__":
    sys.exit(main())
