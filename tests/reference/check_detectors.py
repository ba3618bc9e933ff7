#!/usr/bin/env python3
"""igcam's detections and maps against ultralytics' post-processing and pytorch-grad-cam on the
full-size ultralytics YOLOv8n and YOLO11n (run by hand, outside CI; it prints a table and writes
nothing to the repo).

    pip install torch ultralytics grad-cam==1.5.7 onnx onnxscript ./python
    YOLO_OFFLINE=1 python3 tests/reference/check_detectors.py

Each from its yaml (80 classes, 640×640), seeded random weights calibrated as
`bench/detector_bench.py` does (BatchNorm on the photos, class biases set so that
`astronaut.png` holds a few dozen detections), exported by the legacy exporter (opset 17) and
the new one (`dynamo=True`). igcam's detections (`backend="cpu"`) against ultralytics'
`non_max_suppression` (conf 0.25, IoU 0.7) of PyTorch's raw output: the same anchors and
classes, the worst box IoU. For the two most confident: Grad-CAM of the detection's class score
at its anchor at each neck layer (`model.15/.18/.21`; YOLO11 `.16/.19/.22`), and IG-CAM m = 8 (the
sum of those maps over the left Riemann points from black), pytorch-grad-cam in float64
against igcam's float32 maps, relative L2 (the worst over the three layers), beside
pytorch-grad-cam's own float32 Grad-CAM against its float64 one.
"""
import copy
import os
import sys
import tempfile
import warnings

os.environ.setdefault("YOLO_OFFLINE", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402

import igcam  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench"))
from detector_bench import calibrate, photo  # noqa: E402
from make_detection_zoo import Confidence, gradcam  # noqa: E402

warnings.filterwarnings("ignore")
STEPS = 8


def build(config):
    from ultralytics.nn.tasks import DetectionModel
    torch.manual_seed(0)
    m = DetectionModel(config, verbose=False)
    head = m.model[-1]
    head.export, head.format = True, "onnx"
    return m, head


def iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return w * h / (area(a) + area(b) - w * h)


def main():
    from ultralytics.utils.nms import non_max_suppression
    x = photo("astronaut.png", 640)
    print("| model | exporter | detections (igcam / ultralytics) | worst box IoU | Grad-CAM rel. L2 | IG-CAM m = 8 rel. L2 "
          "| PyTorch's own f32 Grad-CAM rel. L2 |\n|---|---|---|---|---|---|---|")
    for config in ["yolov8n.yaml", "yolo11n.yaml"]:
        m, head = build(config)
        calibrate(m, head, x, 20)
        with torch.no_grad():
            raw = m(x)
        kept, idx = non_max_suppression(raw, conf_thres=0.25, iou_thres=0.7, max_det=300, return_idxs=True)
        want = [(int(a), int(d[5]), [float(v) for v in d[:4]]) for d, a in zip(kept[0], idx[0].view(-1))]
        m64, x64 = copy.deepcopy(m).double(), x.double()
        layers64 = [m64.model[i] for i in head.f]
        refs, own = [], []
        for anchor, cls, _ in want[:2]:
            t = Confidence(anchor, cls, False)
            refs.append([(gradcam(m64, [layer], x64, t, False),
                          sum(gradcam(m64, [layer], x64 * (s / STEPS), t, False) for s in range(STEPS)))
                         for layer in layers64])
            # PyTorch's own float32 Grad-CAM against its float64 one: the rounding floor.
            for layer, (w, _) in zip([m.model[i] for i in head.f], refs[-1]):
                g32 = gradcam(m, [layer], x, t, False)
                own.append(np.linalg.norm(g32 - w) / max(np.linalg.norm(w), 1e-30))
        for tag, options in [("legacy, opset 17", dict(opset_version=17, dynamo=False)), ("dynamo", dict(dynamo=True))]:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "model.onnx")
                torch.onnx.export(m, (x,), path, input_names=["images"], output_names=["output0"], **options)
                ex = igcam.Explainer(model=path, backend="cpu")
                maps = ex.explain(x[0].numpy(), targets="all", methods="gradcam")
                got = [(e.detection["anchor"], e.detection["class"], list(e.detection["box"])) for e in maps]
                same = [(a, c) for a, c, _ in got] == [(a, c) for a, c, _ in want]
                worst_iou = min((iou(g[2], w[2]) for g, w in zip(got, want)), default=float("nan"))
                layer_names = maps[0].layer.split(",")
                errors = [[], []]
                for k, ref in enumerate(refs):
                    for name, (g_ref, ig_ref) in zip(layer_names, ref):
                        for j, (method, w) in enumerate([("gradcam", g_ref), ("igcam", ig_ref)]):
                            (e,) = ex.explain(x[0].numpy(), targets=f"det{k}", methods=method, steps=STEPS, layer=name)
                            errors[j].append(np.linalg.norm(e.cam - w) / max(np.linalg.norm(w), 1e-30))
                print(f"| {config[:-5]} | {tag} | {len(got)} / {len(want)}{'' if same else ' (differ)'} | "
                      f"{worst_iou:.4f} | {max(errors[0]):.2e} | {max(errors[1]):.2e} | {max(own):.2e} |", flush=True)


if __name__ == "__main__":
    main()
