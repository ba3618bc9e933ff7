#!/usr/bin/env python3
"""Detector fixtures for the model zoo: ultralytics YOLOv8 and YOLO11 (their `n` configs with
the width narrowed to 1/16 and 3 classes; `[1, 4 + 3, anchors]` raw heads, no NMS) and the
`yolov5` package's YOLOv5n likewise (the classic `[1, anchors, 5 + 3]` layout with objectness),
seeded random weights, BatchNorm statistics calibrated on the repository's photos and the class
biases shifted so that a handful of anchors per class pass the confidence threshold. Each is
exported by the legacy exporter at opset 17 and by the new `dynamo=True` exporter, with a fixed
batch of 1, for the zoo's 128×128 photo (`input.png`) scaled to 0..1 as ultralytics feeds it.

`tests/fixtures/zoo/detectors.json` records per export: the tensors that must be the default
layers (the neck outputs `Detect` reads: onnxruntime values equal to PyTorch's); per
family, the detections after the reference post-processing of PyTorch's raw output (ultralytics'
`non_max_suppression` at its predict defaults conf 0.25, IoU 0.7; yolov5's at conf 0.25, IoU
0.45: anchor, class, confidence, box), and for the two most confident detections
pytorch-grad-cam's Grad-CAM of the detection's confidence at its anchor (the class score;
YOLOv5: objectness × class score), per neck layer at layer resolution (final scaling off,
float64) with IG-CAM beside it (4 steps: the sum of those maps at the left Riemann points
from black), and over all three layers with pytorch-grad-cam's own scaling and averaging
(its several `target_layers`), for the best detection. `tests/zoo.rs` checks all of it.

    pip install torch ultralytics yolov5 grad-cam==1.5.7 onnx onnxruntime onnxscript
    YOLO_OFFLINE=1 python3 tests/reference/make_detection_zoo.py
"""
import copy
import json
import os
import sys
import warnings

os.environ.setdefault("YOLO_OFFLINE", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from pytorch_grad_cam import GradCAM, base_cam  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_zoo as zoo  # noqa: E402

warnings.filterwarnings("ignore")
SCALE_CAM = base_cam.scale_cam_image
CLASSES = 3
WIDTH = 0.0625
EXPORTERS = [e for e in zoo.EXPORTERS if e[0] in ("opset17", "dynamo")]
PHOTOS = ["chelsea.png", "astronaut.png", "coffee.png", "grace_hopper.jpg", "rocket.jpg"]
# Ultralytics' predict defaults, and the yolov5 package's IoU.
CONF, IOU, IOU_V5 = 0.25, 0.7, 0.45


class Raw(torch.nn.Module):
    """A detector returning its raw head output `[1, ..., ...]` (what an export without NMS
    gives)."""

    def __init__(self, model, v5):
        super().__init__()
        self.model, self.v5 = model, v5

    def forward(self, x):
        y = self.model(x)
        return y[0] if self.v5 else y


def ultralytics_model(config):
    from ultralytics.nn.tasks import DetectionModel, yaml_model_load
    cfg = yaml_model_load(config)
    cfg["scales"] = {"n": [cfg["scales"]["n"][0], WIDTH, cfg["scales"]["n"][2]]}
    cfg["scale"] = "n"
    m = DetectionModel(cfg, nc=CLASSES, verbose=False)
    head = m.model[-1]
    head.export, head.format = True, "onnx"
    return m, head


def yolov5_model():
    import yaml
    import yolov5
    from yolov5.models.yolo import DetectionModel
    with open(os.path.join(os.path.dirname(yolov5.__file__), "models", "yolov5n.yaml")) as f:
        cfg = yaml.safe_load(f)
    cfg["width_multiple"] = WIDTH
    m = DetectionModel(cfg, ch=3, nc=CLASSES)
    head = m.model[-1]
    head.export = True
    return m, head


def detectors():
    """(name, raw-output module, the inner model's `Detect`, the modules it reads)."""
    for name, seed, make in [("yolov8", 40, lambda: ultralytics_model("yolov8n.yaml")),
                             ("yolo11", 41, lambda: ultralytics_model("yolo11n.yaml")),
                             ("yolov5", 42, yolov5_model)]:
        torch.manual_seed(seed)
        m, head = make()
        layers = [m.model[i] for i in head.f]
        yield name, Raw(m, name == "yolov5"), head, layers


def photos():
    images = []
    for name in PHOTOS:
        img = Image.open(os.path.join(zoo.ROOT, "assets", "images", name)).convert("RGB").resize((zoo.SIZE, zoo.SIZE))
        images.append((np.asarray(img, dtype=np.float32) / 255.0).transpose(2, 0, 1))
    return torch.from_numpy(np.stack(images + [i[:, :, ::-1].copy() for i in images]))


def class_biases(model, head, v5):
    """The class convolutions' biases and weights (per scale, `[anchors per cell, outputs]`
    and `[anchors per cell, outputs, inputs]`), and which outputs are class scores."""
    if v5:
        return [(conv.bias.view(head.na, head.no), conv.weight.view(head.na, head.no, -1), slice(5, None))
                for conv in head.m]
    return [(seq[-1].bias.view(1, -1), seq[-1].weight.view(1, head.nc, -1), slice(0, None)) for seq in head.cv3]


def calibrate(model, head, x, v5):
    """BatchNorm statistics from the photos (and their mirror images); then the class biases
    (`shift_scores`) at the first level that leaves no confidence within 3e-4 of the
    threshold and 4 to 40 detections."""
    zoo.calibrate_bn(model, lambda: model.model(photos()))
    for level in [0.5, 0.45, 0.4, 0.35, 0.3, 0.55, 0.6]:
        shift_scores(model, head, x, v5, level)
        with torch.no_grad():
            out = model(x)
        o = out[0]
        if v5:  # the objectness and, where it passes, the confidences
            conf = torch.cat([o[:, 4], (o[:, 4:5] * o[:, 5:])[o[:, 4] > CONF].flatten()])
        else:
            conf = o[4:].flatten()
        if (conf - CONF).abs().min() > 3e-4 and 4 <= len(reference_detections(out, v5)) <= 40:
            return
    raise AssertionError("every level leaves a confidence within 3e-4 of the threshold or too many detections")


def shift_scores(model, head, x, v5, level):
    """Every class's score logits spread to a standard deviation of 1.5 over the anchors of
    the photo `x` (random class weights leave them nearly equal) and shifted so that its 6th
    best anchor scores `level` (YOLOv5: the objectness's median at 0.9 first)."""
    def logits_at_x():
        out = model(x)[0]
        scores = out[:, 5:] if v5 else out[4:].T  # [anchors, classes]
        return out, torch.logit(scores.clamp(1e-6, 1 - 1e-6))

    with torch.no_grad():
        for bias, _, _ in class_biases(model, head, v5):
            bias[:, 4 if v5 else 0:] = 0.0
        _, logits = logits_at_x()
        for c in range(CLASSES):
            for _, weight, cls in class_biases(model, head, v5):
                weight[:, cls][:, c] *= 1.5 / float(logits[:, c].std())
        out, logits = logits_at_x()
        if v5:  # objectness too: its median at 0.9
            obj = torch.logit(out[:, 4].clamp(1e-6, 1 - 1e-6))
            for bias, _, _ in class_biases(model, head, v5):
                bias[:, 4] = np.log(0.9 / 0.1) - obj.median()
        for c in range(CLASSES):
            shift = np.log(level / (1 - level)) - logits[:, c].sort(descending=True).values[5]
            for bias, _, cls in class_biases(model, head, v5):
                bias[:, cls][:, c] = shift


def reference_detections(out, v5):
    """The reference post-processing of one raw output `out` (`[1, ...]`): rows of (anchor,
    class, confidence, x0, y0, x1, y1)."""
    if v5:
        from yolov5.utils.general import non_max_suppression
        kept = non_max_suppression(out.float(), conf_thres=CONF, iou_thres=IOU_V5, max_det=300)[0]
        # The anchor of each: the one whose decoded box and confidence are the detection's.
        o = out[0].float()
        xyxy = torch.cat([o[:, :2] - o[:, 2:4] / 2, o[:, :2] + o[:, 2:4] / 2], 1)
        rows = []
        for d in kept:
            c = int(d[5])
            conf = o[:, 4] * o[:, 5 + c]
            err = (xyxy - d[:4]).abs().sum(1) + (conf - d[4]).abs()
            rows.append((int(err.argmin()), c, float(d[4]), *[float(v) for v in d[:4]]))
        return rows
    from ultralytics.utils.nms import non_max_suppression
    kept, idx = non_max_suppression(out.float(), conf_thres=CONF, iou_thres=IOU, max_det=300, return_idxs=True)
    return [(int(i), int(d[5]), float(d[4]), *[float(v) for v in d[:4]]) for d, i in zip(kept[0], idx[0].view(-1))]


def arr(a):
    """`a` as float32 values to 8 significant digits (what the zoo's maps need, in half the
    text)."""
    a = np.asarray(a, dtype=np.float32)
    return {"shape": list(a.shape), "values": [float(f"{v:.8g}") for v in a.reshape(-1)]}


class Confidence:
    """pytorch-grad-cam target: a detection's confidence at its anchor in one image's raw
    output (YOLOv8/11 `[4 + C, A]`: the class score; YOLOv5 `[A, 5 + C]`: objectness × class
    score)."""

    def __init__(self, anchor, cls, v5):
        self.anchor, self.cls, self.v5 = anchor, cls, v5

    def __call__(self, out):
        if self.v5:
            return out[self.anchor, 4] * out[self.anchor, 5 + self.cls]
        return out[4 + self.cls, self.anchor]


def gradcam(model, layers, x, target, scaled):
    base_cam.scale_cam_image = SCALE_CAM if scaled else (lambda cam, target_size=None: cam)
    with GradCAM(model=model, target_layers=layers) as cam:
        out = cam(input_tensor=x, targets=[target])
    base_cam.scale_cam_image = SCALE_CAM
    return np.asarray(out[0], dtype=np.float64)


def main():
    zoo.photo()  # writes input.png
    pix = np.asarray(Image.open(os.path.join(zoo.OUT, "input.png")).convert("RGB"), dtype=np.float32) / 255.0
    x = torch.from_numpy(pix.transpose(2, 0, 1)[None].copy())
    black = torch.zeros_like(x)
    cases, families = [], {}
    for name, model, head, layers in detectors():
        v5 = name == "yolov5"
        calibrate(model, head, x, v5)
        with torch.no_grad():
            out = model(x)
        detections = reference_detections(out, v5)
        assert len(detections) >= 2, f"{name}: {len(detections)} detections"
        stored = []
        hooks = [layer.register_forward_hook(lambda m, i, o: stored.append(o.detach().clone())) for layer in layers]
        with torch.no_grad():
            model(x)
        for h in hooks:
            h.remove()
        m64, x64, b64 = copy.deepcopy(model).double(), x.double(), black.double()
        modules, modules64 = list(model.modules()), list(m64.modules())
        layers64 = [modules64[modules.index(layer)] for layer in layers]
        targets = []
        for k, (anchor, cls, score, *_) in enumerate(detections[:2]):
            t = Confidence(anchor, cls, v5)
            per_layer = []
            for layer64 in layers64:
                per_layer.append({
                    "gradcam": arr(gradcam(m64, [layer64], x64, t, False)),
                    "igcam": arr(sum(gradcam(m64, [layer64], b64 + (x64 - b64) * (s / zoo.STEPS), t, False)
                                         for s in range(zoo.STEPS)))})
            targets.append({"anchor": anchor, "class": cls, "score": score, "layers": per_layer})
            if k == 0:  # over all layers (the default), at the input's size: the best only
                targets[0]["gradcam_all_layers"] = arr(gradcam(m64, layers64, x64, t, True))
        families[name] = {"detections": [dict(zip(["anchor", "class", "score", "x0", "y0", "x1", "y1"], d))
                                         for d in detections], "targets": targets}
        for tag, options in EXPORTERS:
            file = f"{name}_{tag}.onnx"
            path = os.path.join(zoo.OUT, file)
            zoo.export(model, x, path, options, output="output0")
            neck = []
            for a in stored:
                found = zoo.tensors_equal_to(path, x, a)
                assert found, f"{file}: no tensor equals a neck output"
                neck.append(found[-1])
            cases.append({"family": name, "exporter": tag, "model": file, "layers": neck})
            print(f"{file:24s} {os.path.getsize(path):7d} bytes  {len(detections)} detections  layers {neck}")
    with open(os.path.join(zoo.OUT, "detectors.json"), "w") as f:
        json.dump({"size": zoo.SIZE, "steps": zoo.STEPS, "classes": CLASSES, "conf": CONF,
                   "families": families, "cases": cases}, f, indent=1)


if __name__ == "__main__":
    main()
