#!/usr/bin/env python3
"""Fixtures for ultralytics' instance-segmentation and pose exports, which igcam explains
through their boxes: YOLOv8n-seg (3 classes; `output0` `[1, 4 + 3 + 32, anchors]` with 32 mask
coefficients per anchor, `output1` the mask prototypes, made by a `ConvTranspose` igcam does
not run) and YOLOv8n-pose (1 class; `[1, 4 + 1 + 17 * 3, anchors]`), their `n` configs with the
width narrowed to 1/16, seeded random weights, BatchNorm statistics calibrated on the
repository's photos and the class biases shifted so that a few anchors pass the confidence
threshold. Each is exported by ultralytics' own exporter (`Exporter`, ONNX, opset 17, the
zoo's 128×128 input), so the file carries ultralytics' metadata: `task`, and `names` as the
Python literal of a dict (here with quotes in a name, as a custom dataset may have).

`tests/fixtures/zoo/ultralytics_tasks.json` records per model: the metadata, the detections
after ultralytics' own `non_max_suppression` (predict defaults: conf 0.25, IoU 0.7, `nc` from
the names, so the mask coefficients or keypoints are carried and not scored) of onnxruntime's
raw output of the file, and pytorch-grad-cam's Grad-CAM of the best detection's confidence at
its anchor over the three neck outputs `Detect` reads (its several `target_layers`, scaled and
averaged; float64 on the unfused PyTorch model). `tests/zoo.rs` checks all of it.

    pip install torch ultralytics grad-cam==1.5.7 onnx onnxruntime
    YOLO_OFFLINE=1 python3 tests/reference/make_ultralytics_tasks.py
"""
import copy
import json
import os
import sys
import warnings

os.environ.setdefault("YOLO_OFFLINE", "1")
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_detection_zoo as dz  # noqa: E402
import make_zoo as zoo  # noqa: E402

warnings.filterwarnings("ignore")
CONF, IOU = 0.25, 0.7
# (file, ultralytics model class, config, task, class names, seed)
MODELS = [
    ("yolov8_seg.onnx", "SegmentationModel", "yolov8n-seg.yaml", "segment",
     {0: "o'cat", 1: 'dog "rex"', 2: "bird"}, 43),
    ("yolov8_pose.onnx", "PoseModel", "yolov8n-pose.yaml", "pose", {0: "person"}, 44),
]


class Raw(torch.nn.Module):
    """The raw `output0` of a model in export mode (a segmentation head also returns its
    prototypes)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        y = self.model(x)
        return y[0] if isinstance(y, (tuple, list)) else y


def build(cls_name, config, task, names):
    from ultralytics.nn import tasks
    cfg = tasks.yaml_model_load(config)
    cfg["scales"] = {"n": [cfg["scales"]["n"][0], dz.WIDTH, cfg["scales"]["n"][2]]}
    cfg["scale"] = "n"
    m = getattr(tasks, cls_name)(cfg, nc=len(names), verbose=False)
    m.names, m.task, m.args = names, task, {"data": f"{task}.yaml"}
    m.yaml["yaml_file"] = config
    head = m.model[-1]
    head.export, head.format = True, "onnx"
    return m, head


def shift_scores(raw, head, x, nc, level=0.5):
    """Each class's score logits spread to a standard deviation of 1.5 over the anchors of `x`
    and shifted so that its 4th best anchor scores `level`."""
    def logits():
        scores = raw(x)[0, 4:4 + nc].T  # [anchors, classes]
        return torch.logit(scores.clamp(1e-6, 1 - 1e-6))

    with torch.no_grad():
        for seq in head.cv3:
            seq[-1].bias.zero_()
        lg = logits()
        for seq in head.cv3:
            seq[-1].weight.mul_((1.5 / lg.std(0)).view(-1, 1, 1, 1))
        lg = logits()
        for c in range(nc):
            shift = np.log(level / (1 - level)) - lg[:, c].sort(descending=True).values[3]
            for seq in head.cv3:
                seq[-1].bias[c] = shift


def nms(out, nc):
    """ultralytics' post-processing of a raw `output0`: rows of (anchor, class, confidence,
    x0, y0, x1, y1)."""
    from ultralytics.utils.nms import non_max_suppression
    kept, idx = non_max_suppression(torch.from_numpy(out), conf_thres=CONF, iou_thres=IOU, max_det=300,
                                    nc=nc, return_idxs=True)
    return [(int(i), int(d[5]), float(d[4]), *[float(v) for v in d[:4]])
            for d, i in zip(kept[0], idx[0].view(-1))]


def main():
    from ultralytics.engine.exporter import Exporter
    zoo.photo()
    pix = np.asarray(Image.open(os.path.join(zoo.OUT, "input.png")).convert("RGB"), dtype=np.float32) / 255.0
    x = torch.from_numpy(pix.transpose(2, 0, 1)[None].copy())
    records = []
    for file, cls_name, config, task, names, seed in MODELS:
        torch.manual_seed(seed)
        model, head = build(cls_name, config, task, names)
        raw = Raw(model).eval()
        zoo.calibrate_bn(model, lambda: model(dz.photos()))
        model.eval()
        shift_scores(raw, head, x, len(names))
        path = os.path.join(zoo.OUT, file)
        exported = Exporter(overrides={"format": "onnx", "imgsz": zoo.SIZE, "batch": 1, "simplify": False,
                                       "opset": 17, "device": "cpu"})(model=copy.deepcopy(model))
        os.replace(exported, path)
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        out = session.run(["output0"], {session.get_inputs()[0].name: x.numpy()})[0]
        with torch.no_grad():
            assert np.abs(raw(x).numpy() - out).max() < 1e-3, file
        detections = nms(out, len(names))
        assert len(detections) >= 2, f"{file}: {len(detections)} detections"
        anchor, cls = detections[0][:2]
        m64 = copy.deepcopy(raw).double()
        modules, modules64 = list(raw.modules()), list(m64.modules())
        layers64 = [modules64[modules.index(model.model[i])] for i in head.f]
        cam = dz.gradcam(m64, layers64, x.double(), dz.Confidence(anchor, cls, False), True)
        records.append({
            "model": file, "task": task, "names": [names[i] for i in range(len(names))],
            "extra": int(out.shape[1]) - 4 - len(names),
            "outputs": [o.name for o in session.get_outputs()],
            "detections": [dict(zip(["anchor", "class", "score", "x0", "y0", "x1", "y1"], d)) for d in detections],
            "gradcam_all_layers": dz.arr(cam),
        })
        print(f"{file:20s} {os.path.getsize(path):7d} bytes  {len(detections)} detections")
    with open(os.path.join(zoo.OUT, "ultralytics_tasks.json"), "w") as f:
        json.dump({"size": zoo.SIZE, "conf": CONF, "models": records}, f, indent=1)


if __name__ == "__main__":
    main()
