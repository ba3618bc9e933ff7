#!/usr/bin/env python3
"""Grad-CAM of every detection of one photo with ultralytics YOLOv8n, igcam against
pytorch-grad-cam, in one run on one machine (the detector goal of issue 20).

The model is ultralytics' `yolov8n.yaml` (80 classes, 640×640) with seeded random weights,
BatchNorm statistics calibrated on the repository's photos and the class biases shifted so that
the photo holds a few dozen detections (random heads detect nothing). It is exported to ONNX
(legacy exporter, opset 17, no NMS) for igcam. The photo (`assets/images/astronaut.png`) is
resized to 640×640 first, so both see the same input (RGB / 255).

Timed, alternating, `--reps` rounds each:
- igcam `bench --methods gradcam --target all` and `--target top1` on the CPU backend: the
  whole request in the process, after a warm-up (the photo's pass that finds the detections,
  then the maps, read back and averaged over the layers; not the model's loading or the files
  `explain` writes), one timed repetition per round;
- pytorch-grad-cam `GradCAM` over the same three neck layers (`model.15`, `.18`, `.21`) for the
  same detections, the detection's class score at its anchor as the target: the photo
  repeated once per detection in one batch (its fastest use: one forward and one backward for
  all maps), after a warm-up.

    YOLO_OFFLINE=1 python3 bench/detector_bench.py --igcam target/release/igcam-wgpu --reps 3
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("YOLO_OFFLINE", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 640
PHOTOS = ["chelsea.png", "astronaut.png", "coffee.png", "grace_hopper.jpg", "rocket.jpg"]


def build():
    from ultralytics.nn.tasks import DetectionModel
    torch.manual_seed(0)
    m = DetectionModel("yolov8n.yaml", verbose=False)
    head = m.model[-1]
    head.export, head.format = True, "onnx"
    return m, head


def photo(name, size):
    img = Image.open(os.path.join(ROOT, "assets", "images", name)).convert("RGB").resize((size, size))
    return torch.from_numpy((np.asarray(img, dtype=np.float32) / 255.0).transpose(2, 0, 1)[None].copy())


def calibrate(m, head, x, detections):
    """BatchNorm statistics from the photos; class logits spread to a standard deviation of 1.5
    and shifted so that the photo `x`'s best anchor per class clears 0.25 for about
    `detections` classes."""
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.reset_running_stats()
            mod.momentum = None
    m.train()
    with torch.no_grad():
        m(torch.cat([photo(p, 320) for p in PHOTOS]))
    m.eval()
    with torch.no_grad():
        for seq in head.cv3:
            seq[-1].bias.zero_()
        logits = torch.logit(m(x)[0, 4:].T.clamp(1e-6, 1 - 1e-6))
        for seq in head.cv3:
            seq[-1].weight.mul_((1.5 / logits.std(0)).view(-1, 1, 1, 1))
        logits = torch.logit(m(x)[0, 4:].T.clamp(1e-6, 1 - 1e-6))
        best = logits.max(0).values
        # The `detections` most confident classes' best anchors at 0.6, the others below 0.1.
        order = best.argsort(descending=True)
        for rank, c in enumerate(order.tolist()):
            level = 0.6 if rank < detections else 0.1
            for seq in head.cv3:
                seq[-1].bias[c] = np.log(level / (1 - level)) - best[c]


def igcam_ms(binary, model, image, target, out):
    json_path = os.path.join(out, "maps.json")
    subprocess.run([binary, "explain", image, "--model", model, "--backend", "cpu", "--method", "gradcam",
                    "--target", target, "--quiet", "--out", out, "--json", json_path],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = json.load(open(json_path))
    return sum(r["ms"] for r in records), records


def igcam_bench_ms(binary, model, image, target, out):
    """One timed repetition of `bench` (after its warm-up): the request's whole time."""
    json_path = os.path.join(out, "bench.json")
    subprocess.run([binary, "bench", "--model", model, "--image", image, "--backend", "cpu",
                    "--methods", "gradcam", "--target", target, "--reps", "1", "--json", json_path],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.load(open(json_path))["results"][0]["median_ms"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--igcam", required=True, help="the igcam-wgpu binary")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--detections", type=int, default=20, help="classes given a detection")
    args = p.parse_args()
    from pytorch_grad_cam import GradCAM
    from ultralytics.utils.nms import non_max_suppression

    m, head = build()
    x = photo("astronaut.png", SIZE)
    calibrate(m, head, x, args.detections)
    tmp = tempfile.mkdtemp()
    model_path, image_path = os.path.join(tmp, "yolov8n.onnx"), os.path.join(tmp, "astronaut640.png")
    Image.fromarray((x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(image_path)
    x = photo_png = torch.from_numpy(np.asarray(Image.open(image_path), dtype=np.float32).transpose(2, 0, 1)[None] / 255.0)
    torch.onnx.export(m, (x,), model_path, input_names=["images"], output_names=["output0"], opset_version=17,
                      dynamo=False)
    with torch.no_grad():
        raw = m(photo_png)
    kept, idx = non_max_suppression(raw, conf_thres=0.25, iou_thres=0.7, max_det=300, return_idxs=True)
    targets = [(int(a), int(d[5])) for d, a in zip(kept[0], idx[0].view(-1))]
    layers = [m.model[i] for i in head.f]

    class Score:
        def __init__(self, anchor, cls):
            self.anchor, self.cls = anchor, cls

        def __call__(self, out):
            return out[4 + self.cls, self.anchor]

    def torch_all():
        t0 = time.perf_counter()
        with GradCAM(model=m, target_layers=layers) as cam:
            maps = cam(input_tensor=x.repeat(len(targets), 1, 1, 1), targets=[Score(a, c) for a, c in targets])
        return (time.perf_counter() - t0) * 1000, maps

    torch_all()  # warm-up
    _, records = igcam_ms(args.igcam, model_path, image_path, "all", tmp)
    assert [(r["detection"]["anchor"], r["detection"]["class"]) for r in records] == targets, "same detections"
    rounds = {"igcam all": [], "igcam top1": [], "pytorch-grad-cam all": []}
    for _ in range(args.reps):
        rounds["igcam all"].append(igcam_bench_ms(args.igcam, model_path, image_path, "all", tmp))
        rounds["igcam top1"].append(igcam_bench_ms(args.igcam, model_path, image_path, "top1", tmp))
        rounds["pytorch-grad-cam all"].append(torch_all()[0])
    med = {k: statistics.median(v) for k, v in rounds.items()}
    print(f"{len(targets)} detections of astronaut.png (640x640), Grad-CAM over 3 neck layers, torch threads "
          f"{torch.get_num_threads()}")
    for k, v in rounds.items():
        print(f"  {k:22s} median {med[k]:8.1f} ms   ({', '.join(f'{t:.1f}' for t in v)})")
    print(f"  all / one detection (igcam):   {med['igcam all'] / med['igcam top1']:.2f}x")
    print(f"  igcam / pytorch-grad-cam (all): {med['igcam all'] / med['pytorch-grad-cam all']:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
