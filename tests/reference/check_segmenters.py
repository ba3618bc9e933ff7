#!/usr/bin/env python3
"""igcam's maps against pytorch-grad-cam's on full-size torchvision segmenters (run by hand,
outside CI; it prints a table and writes nothing to the repo).

    pip install torch torchvision grad-cam==1.5.7 onnx onnxscript ./python
    python3 tests/reference/check_segmenters.py

`fcn_resnet50`, `deeplabv3_mobilenet_v3_large` and `lraspp_mobilenet_v3_large` (21 classes,
seeded random weights, BatchNorm statistics calibrated on voc-mini's photos and their mirror
images, the classifier's biases centred so that several classes hold regions), each exported
by the legacy exporter (opset 17) and the new one (`dynamo=True`), their `out` as the output.
On voc-mini's chelsea photo (resized to 256, centre-cropped to 224), for the two largest class
regions: Grad-CAM at igcam's default layer (the backbone's output) with pytorch-grad-cam's
`SemanticSegmentationTarget` (the class's scores summed over its region) and IG-CAM m = 8 (the
sum of those maps over the left Riemann points from black, the region kept), pytorch-grad-cam
in float64 against igcam's float32 maps (`backend="cpu"`), relative L2.
"""
import glob
import os
import sys
import tempfile
import warnings

import numpy as np
import torch
from pytorch_grad_cam import base_cam
from torchvision.models import segmentation

import igcam

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_resnet50 import ROOT, photo  # noqa: E402
from make_segmentation_zoo import Out, gradcam  # noqa: E402

warnings.filterwarnings("ignore")
base_cam.scale_cam_image = lambda cam, target_size=None: cam  # raw layer-resolution maps
STEPS = 8
NAMES = {"fcn_resnet50": "layer4", "deeplabv3_mobilenet_v3_large": "16", "lraspp_mobilenet_v3_large": "16"}


def calibrated(name, images):
    torch.manual_seed(0)
    model = Out(getattr(segmentation, name)(weights=None, weights_backbone=None, num_classes=21, aux_loss=False))
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    model.train()
    with torch.no_grad():
        model(images)
    model.eval()
    with torch.no_grad():
        means = model(images).mean(dim=(0, 2, 3))
        last = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.out_channels == 21]
        for conv in last:
            conv.bias -= means / len(last)
    return model


def main():
    paths = sorted(glob.glob(os.path.join(ROOT, "tests/data/voc-mini/JPEGImages/*.jpg")))
    xs = [photo(p) for p in paths]
    x32 = xs[[os.path.basename(p) for p in paths].index("chelsea.jpg")][None]
    mean = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
    std = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]
    black32 = ((0 - mean) / std * np.ones((3, 224, 224), np.float32))[None].astype(np.float32)
    images = torch.from_numpy(np.stack(xs + [x[:, :, ::-1].copy() for x in xs]))
    print("| model | exporter | igcam layer | class (pixels) | Grad-CAM rel. L2 | IG-CAM m = 8 rel. L2 |\n"
          "|---|---|---|---|---|---|")
    for name, layer in NAMES.items():
        model = calibrated(name, images)
        module = dict(model.model.backbone.named_children())[layer]
        x = torch.from_numpy(x32)
        with torch.no_grad():
            best = model(x)[0].argmax(0).numpy()
        pixels = [int((best == c).sum()) for c in range(21)]
        targets = sorted(range(21), key=lambda c: (-pixels[c], c))[:2]
        m64, x64, b64 = model.double(), x.double(), torch.from_numpy(black32).double()
        want = {}
        for c in targets:
            mask = (best == c).astype(np.float64)
            want[c] = (gradcam(m64, module, x64, c, mask),
                       sum(gradcam(m64, module, b64 + (x64 - b64) * (i / STEPS), c, mask) for i in range(STEPS)))
        model.float()
        for tag, options in [("legacy, opset 17", dict(opset_version=17, dynamo=False)), ("dynamo", dict(dynamo=True))]:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "model.onnx")
                torch.onnx.export(model, (x,), path, input_names=["input"], output_names=["out"], **options)
                explainer = igcam.Explainer(model=path, backend="cpu")
                for c in targets:
                    errors = []
                    for method, w in zip(["gradcam", "igcam"], want[c]):
                        e = explainer.explain(x32, targets=[c], methods=[method], steps=STEPS)[0]
                        errors.append(np.linalg.norm(e.cam - w) / max(np.linalg.norm(w), 1e-30))
                    print(f"| {name} | {tag} | `{explainer.default_layer}` | {c} ({pixels[c]}) | "
                          f"{errors[0]:.2e} | {errors[1]:.2e} |", flush=True)


if __name__ == "__main__":
    main()
