#!/usr/bin/env python3
"""Check `igcam-wgpu explain --json` against PyTorch on a torchvision model (run by hand).

    python3 models/export_torchvision.py resnet50 /tmp/resnet50.onnx --random
    python3 tests/reference/check_torchvision.py resnet50 /tmp/resnet50.onnx photo_224.png \
        --bin target/release/igcam-wgpu --backend cpu --steps 50

Recomputes the IG-CAM, Grad-CAM and pixel-level IG maps from the formulas in the README with the
torchvision module (same seeded weights as the export) and prints the relative L2 error of the
CLI's `cam.values`.
"""
import argparse
import json
import subprocess
import tempfile

import numpy as np
import torch
import torchvision
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
LAYERS = {"resnet50": ("layer4", "/layer4/layer4.2/relu_2/Relu_output_0"),
          "vgg16": ("features.29", "/features/features.29/Relu_output_0")}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("arch", choices=sorted(LAYERS))
    p.add_argument("onnx")
    p.add_argument("image", help="a 224x224 PNG")
    p.add_argument("--bin", default="target/release/igcam-wgpu")
    p.add_argument("--backend", default="cpu")
    p.add_argument("--steps", type=int, default=50)
    args = p.parse_args()
    torch.manual_seed(0)
    model = getattr(torchvision.models, args.arch)(weights=None).eval()
    module_name, layer = LAYERS[args.arch]
    module = dict(model.named_modules())[module_name]
    pix = np.asarray(Image.open(args.image).convert("RGB"), dtype=np.float32) / 255.0
    x = torch.from_numpy(((pix - MEAN) / STD).transpose(2, 0, 1)[None].copy())
    b = torch.from_numpy(((np.zeros_like(pix) - MEAN) / STD).transpose(2, 0, 1)[None].copy())
    target = int(model(x)[0].argmax())

    def cam(alphas):
        total = 0
        for a in alphas:
            store = {}
            h = module.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
            out = model(b + (x - b) * a)
            h.remove()
            act = store["a"]
            g = torch.autograd.grad(out[0, target], act)[0]
            total = total + torch.relu((g.mean(dim=(2, 3), keepdim=True) * act).sum(1))
        return total[0].detach().numpy().reshape(-1)

    def ig(alphas):
        total = torch.zeros_like(x)
        for a in alphas:
            point = (b + (x - b) * a).requires_grad_(True)
            total = total + torch.autograd.grad(model(point)[0, target], point)[0]
        return ((x - b) * total / len(alphas)).sum(1)[0].detach().numpy().reshape(-1)

    path = [i / args.steps for i in range(args.steps)]
    refs = {"igcam": cam(path), "gradcam": cam([1.0]), "ig": ig(path)}
    with tempfile.TemporaryDirectory() as d:
        for method, ref in refs.items():
            out = f"{d}/{method}.json"
            subprocess.run([args.bin, "explain", args.image, "--model", args.onnx, "--layer", layer, "--method", method,
                            "--steps", str(args.steps), "--backend", args.backend, "--json", out, "--out", d, "--quiet"],
                           check=True)
            got = np.array(json.load(open(out))[0]["cam"]["values"], dtype=np.float64)
            err = np.linalg.norm(got - ref) / np.linalg.norm(ref)
            print(f"{args.arch} {method} backend={args.backend} steps={args.steps} target={target}: relative L2 {err:.2e}")


if __name__ == "__main__":
    main()
