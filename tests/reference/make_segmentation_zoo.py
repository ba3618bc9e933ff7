#!/usr/bin/env python3
"""Segmenter fixtures for the model zoo: torchvision's FCN, DeepLabV3 and LR-ASPP heads, each on
a narrowed dilated MobileNetV3-Large backbone (width 0.25, the last two blocks left out; DeepLabV3's ASPP at 8
channels, FCN's and LR-ASPP's heads narrowed likewise), seeded random weights with BatchNorm statistics calibrated on the repository's
photos and the classifier's biases centred so that several classes hold regions, exported by
the legacy exporter at opset 17 and 13 and by the new `dynamo=True` exporter, all with a fixed
batch of 1 and the model's `out` as the only output.

For each export, `tests/fixtures/zoo/segmenters.json` records the tensor that must be the
default layer (the ONNX tensor whose onnxruntime value equals the backbone's output), each
class's region size (pixels where it scores highest) and, for the two largest regions,
pytorch-grad-cam's Grad-CAM there with its `SemanticSegmentationTarget` (the class's scores
summed over its region; final scaling and resize turned off; float64) and IG-CAM (4 steps:
the sum of those maps at the left Riemann points from black, the region kept from the photo),
and Grad-CAM of the second class over a region of the user's own (the top-left quadrant).
`tests/zoo.rs` checks all of it.

    pip install torch torchvision grad-cam==1.5.7 onnx onnxruntime onnxscript
    python3 tests/reference/make_segmentation_zoo.py

`python3 tests/reference/make_segmentation_zoo.py shapleycam` adds pytorch-grad-cam's ShapleyCAM
maps for the same targets to the fixture already there (the models rebuilt from their seeds,
checked against the recorded region sizes), without exporting again.
"""
import json
import os
import sys
import warnings

import numpy as np
import torch
from PIL import Image
from pytorch_grad_cam import GradCAM, ShapleyCAM, base_cam
from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget
from torchvision.models import mobilenetv3
from torchvision.models.segmentation import deeplabv3, fcn, lraspp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_zoo as zoo  # noqa: E402

warnings.filterwarnings("ignore")
base_cam.scale_cam_image = lambda cam, target_size=None: cam  # raw layer-resolution maps
CLASSES = 4
PHOTOS = ["chelsea.png", "astronaut.png", "coffee.png", "grace_hopper.jpg", "rocket.jpg"]


class Out(torch.nn.Module):
    """A torchvision segmenter returning its `out` tensor (what an ONNX export gives)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)["out"]


def backbone():
    setting, last = mobilenetv3._mobilenet_v3_conf("mobilenet_v3_large", width_mult=0.25, reduced_tail=False,
                                                   dilated=True)
    # Without the last stage's two residual blocks (their inputs and outputs match): the
    # backbone then ends, as the full one does, in its widest feature map.
    return mobilenetv3.MobileNetV3(setting[:-2], last)


def families():
    """(name, segmenter, the backbone module whose output is the default layer)."""
    from torchvision.models._utils import IntermediateLayerGetter
    torch.manual_seed(30)
    b = backbone()
    features = IntermediateLayerGetter(b.features, return_layers={str(len(b.features) - 1): "out"})
    width = b.features[-1].out_channels
    head = fcn.FCNHead(width, CLASSES)  # FCN's head, narrowed: 3×3 convolution to 8 channels
    head[0], head[1], head[4] = torch.nn.Conv2d(width, 8, 3, padding=1, bias=False), torch.nn.BatchNorm2d(8), \
        torch.nn.Conv2d(8, CLASSES, 1)
    f = fcn.FCN(features, head)
    yield "fcn", Out(f), features[str(len(b.features) - 1)]
    torch.manual_seed(31)
    d = deeplabv3._deeplabv3_mobilenetv3(backbone(), CLASSES, aux=False)
    d.classifier = torch.nn.Sequential(
        deeplabv3.ASPP(width, [12, 24, 36], out_channels=8), torch.nn.Conv2d(8, 8, 3, padding=1, bias=False),
        torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.Conv2d(8, CLASSES, 1))
    yield "deeplabv3", Out(d), d.backbone[list(d.backbone.keys())[-1]]
    torch.manual_seed(32)
    s = lraspp._lraspp_mobilenetv3(backbone(), CLASSES)
    s.classifier = lraspp.LRASPPHead(s.classifier.low_classifier.in_channels, s.classifier.high_classifier.in_channels
                                     and width, CLASSES, inter_channels=16)
    yield "lraspp", Out(s), s.backbone[list(s.backbone.keys())[-1]]


def calibrate(model):
    """BatchNorm statistics from the photos (and their mirror images), then the last
    convolutions' biases shifted so that every class's mean score over the photos is equal."""
    images = []
    for name in PHOTOS:
        img = Image.open(os.path.join(zoo.ROOT, "assets", "images", name)).convert("RGB").resize((zoo.SIZE, zoo.SIZE))
        pix = (np.asarray(img, dtype=np.float32) / 255.0 - zoo.MEAN) / zoo.STD
        images.append(pix.transpose(2, 0, 1))
    x = torch.from_numpy(np.stack(images + [i[:, :, ::-1].copy() for i in images]))
    zoo.randomise_bn(model)
    zoo.calibrate_bn(model, lambda: model(x))
    with torch.no_grad():
        means = model(x).mean(dim=(0, 2, 3))
        last = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.out_channels == CLASSES]
        for conv in last:
            conv.bias -= means / len(last)


def gradcam(model, module, x, target, mask):
    with GradCAM(model=model, target_layers=[module]) as cam:
        out = cam(input_tensor=x, targets=[SemanticSegmentationTarget(target, mask)])
    return np.asarray(out[0], dtype=np.float64)


def shapleycam(model, module, x, target, mask):
    with ShapleyCAM(model=model, target_layers=[module]) as cam:
        out = cam(input_tensor=x, targets=[SemanticSegmentationTarget(target, mask)])
    return np.asarray(out[0], dtype=np.float64)


def add_shapleycam():
    """ShapleyCAM's maps for every recorded target, added to segmenters.json."""
    path = os.path.join(zoo.OUT, "segmenters.json")
    fixture = json.load(open(path))
    x, _ = zoo.photo()
    for name, model, module in families():
        calibrate(model)
        with torch.no_grad():
            best = model(x)[0].argmax(0).numpy()
        cases = [c for c in fixture["cases"] if c["family"] == name]
        pixels = [int((best == c).sum()) for c in range(CLASSES)]
        assert all(c["pixels"] == pixels for c in cases), f"{name}: rebuilt regions {pixels}"
        m64, x64 = model.double(), x.double()
        for target in cases[0]["targets"]:
            c = target["class"]
            got = zoo.arr(shapleycam(m64, module, x64, c, (best == c).astype(np.float64)))
            for case in cases:
                next(t for t in case["targets"] if t["class"] == c)["shapleycam"] = got
            print(name, "class", c, "shapleycam")
    with open(path, "w") as f:
        json.dump(fixture, f, indent=1)


def main():
    x, black = zoo.photo()
    cases = []
    for name, model, module in families():
        calibrate(model)
        with torch.no_grad():
            out = model(x)[0]
        best = out.argmax(0).numpy()
        pixels = [int((best == c).sum()) for c in range(CLASSES)]
        assert sum(p > 0 for p in pixels) >= 2, f"{name}: one class holds every pixel {pixels}"
        targets = sorted(range(CLASSES), key=lambda c: (-pixels[c], c))[:2]
        store = {}
        handle = module.register_forward_hook(lambda m, i, o: store.__setitem__("a", o.detach().clone()))
        with torch.no_grad():
            model(x)
        handle.remove()
        m64, x64, b64 = model.double(), x.double(), black.double()
        maps = {}
        for c in targets:
            mask = (best == c).astype(np.float64)
            maps[c] = {"gradcam": zoo.arr(gradcam(m64, module, x64, c, mask)),
                       "igcam": zoo.arr(sum(gradcam(m64, module, b64 + (x64 - b64) * (i / zoo.STEPS), c, mask)
                                            for i in range(zoo.STEPS)))}
        # A region of the user's own (`--region`): the top-left quadrant, for the second class.
        quadrant = np.zeros_like(best, dtype=np.float64)
        quadrant[: zoo.SIZE // 2, : zoo.SIZE // 2] = 1.0
        custom = {"class": targets[1], "region": "top-left quadrant",
                  "gradcam": zoo.arr(gradcam(m64, module, x64, targets[1], quadrant))}
        model.float()
        for tag, options in zoo.EXPORTERS:
            file = f"{name}_{tag}.onnx"
            path = os.path.join(zoo.OUT, file)
            zoo.export(model, x, path, options, output="out")
            layer = zoo.tensors_equal_to(path, x, store["a"])
            assert len(layer) == 1, f"{file}: the backbone's output is {layer}"
            cases.append({"family": name, "exporter": tag, "model": file, "layer": layer[0], "pixels": pixels,
                          "targets": [{"class": c, **maps[c]} for c in targets], "custom_region": custom})
            print(f"{file:34s} {os.path.getsize(path):7d} bytes  layer {layer[0]}  pixels {pixels}")
    with open(os.path.join(zoo.OUT, "segmenters.json"), "w") as f:
        json.dump({"size": zoo.SIZE, "steps": zoo.STEPS, "classes": CLASSES, "cases": cases}, f, indent=1)


if __name__ == "__main__":
    if sys.argv[1:] == ["shapleycam"]:
        add_shapleycam()
    else:
        main()
