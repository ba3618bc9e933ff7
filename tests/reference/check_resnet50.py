#!/usr/bin/env python3
"""igcam's maps against pytorch-grad-cam's on a full-size ResNet-50 (run by hand, outside CI;
it prints a table and writes nothing to the repo).

    pip install torch torchvision grad-cam==1.5.7 ./python
    SKIP=scorecam,ablationcam python3 tests/reference/check_resnet50.py

torchvision's ResNet-50 with seeded weights, its BatchNorms given random affine parameters and
calibrated on voc-mini's photos and their mirror images (so every folded bias is non-zero and
the activations are not degenerate), exported to ONNX. On voc-mini's chelsea photo (resized to
256, centre-cropped to 224), every CAM method of the table at `layer4` (and the eigen-smoothed
Grad-CAM and HiResCAM), and FullGrad with and without eigen-smoothing, are compared as
tests/reference/make_method_fixtures.py compares them on the small nets: pytorch-grad-cam's raw
maps in float64 against igcam's float32 maps, relative L2. FullGrad scales every channel of
every layer on its own, which magnifies float32 rounding: the script also prints PyTorch's own
float32 FullGrad against its float64 one, the floor igcam's float32 map can reach. Score-CAM and
Ablation-CAM run the network once per channel (2048 here, hours in float64): `SKIP` leaves
methods out.
"""
import glob
import os
import sys
import time

sys.argv = sys.argv[:1]  # make_method_fixtures reads its method filter from the command line
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from PIL import Image  # noqa: E402

import igcam  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_method_fixtures as mm  # noqa: E402  (raw maps: its scale_cam_image is patched out)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def photo(path):
    im = Image.open(path).convert("RGB")
    w, h = im.size
    s = 256 / min(w, h)
    im = im.resize((round(w * s) if w > h else 256, round(h * s) if h > w else 256), Image.BILINEAR)
    w, h = im.size
    left, top = (w - 224) // 2, (h - 224) // 2
    pix = np.asarray(im.crop((left, top, left + 224, top + 224)), dtype=np.float32) / 255.0
    return ((pix - mm.mf.MEAN) / mm.mf.STD).transpose(2, 0, 1).astype(np.float32)


def calibrated_resnet50(images):
    torch.manual_seed(0)
    net = torchvision.models.resnet50(weights=None)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the calibration batch
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    net.train()
    with torch.no_grad():
        net(images)
    return net.eval()


def main():
    paths = sorted(glob.glob(os.path.join(ROOT, "tests/data/voc-mini/JPEGImages/*.jpg")))
    xs = [photo(p) for p in paths]
    net = calibrated_resnet50(torch.from_numpy(np.stack(xs + [x[:, :, ::-1].copy() for x in xs])))
    onnx_path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "igcam-resnet50-calibrated.onnx")
    torch.onnx.export(net, torch.zeros(1, 3, 224, 224), onnx_path, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17, dynamo=False)
    x32 = xs[[os.path.basename(p) for p in paths].index("chelsea.jpg")][None]
    with torch.no_grad():
        target = int(net(torch.from_numpy(x32))[0].argmax())
    fullgrad32 = np.asarray(mm.fullgrad_map(net, torch.from_numpy(x32), target))
    net = net.double()
    x64 = torch.from_numpy(x32).double()
    skip = set(os.environ.get("SKIP", "").split(",")) - {""}
    mm.METHODS = {k: v for k, v in mm.METHODS.items() if k not in skip}
    started = time.time()
    ref = mm.layer_maps(net, net.layer4[-1], x64, target)
    fullgrad64 = mm.fullgrad_map(net, x64, target)
    ref["fullgrad"] = mm.mf.arr(fullgrad64)
    ref["fullgrad+eigen-smooth"] = mm.mf.arr(mm.fullgrad_map(net, x64, target, eigen_smooth=True))
    print(f"target {target}; pytorch-grad-cam's maps in float64: {time.time() - started:.0f} s")
    explainer = igcam.Explainer(model=open(onnx_path, "rb").read(), backend="cpu")
    print(f"igcam's layer: {explainer.default_layer}\n")
    print("| map | shape | relative L2 vs pytorch-grad-cam (float64) |\n|---|---|---|")
    for key, r in ref.items():
        name, _, suffix = key.partition("+")
        want = np.array(r["values"], dtype=np.float64).reshape(r["shape"])
        e = explainer.explain(x32, targets=[target], methods=[name], eigen_smooth=suffix == "eigen-smooth")[0]
        err = np.linalg.norm(e.cam - want) / max(np.linalg.norm(want), 1e-30)
        print(f"| {e.method} | {e.cam.shape[0]}x{e.cam.shape[1]} | {err:.2e} |")
    floor = np.linalg.norm(fullgrad32 - fullgrad64) / np.linalg.norm(fullgrad64)
    print(f"\nPyTorch's own float32 FullGrad vs its float64 one: relative L2 {floor:.2e}")


if __name__ == "__main__":
    main()
