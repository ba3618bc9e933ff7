#!/usr/bin/env python3
"""Reference values for eval's Quantus-family metrics and its statistics (run by hand; CI only
reads the result, tests/fixtures/metrics/quantus.json).

    pip install quantus==0.6.0 grad-cam==1.5.7 torch onnx scipy pillow
    python3 tests/reference/make_metric_fixtures.py

The model is a small seeded CNN made here (tests/fixtures/metrics/faith_net.onnx), whose
confidence moves measurably when pixels are removed (the fixture nets of nets/ barely react:
their softmax stays at 0.13 on a black image); Quantus runs the torch module, igcam the export. The metrics are Quantus's own
classes, with three patches, each said where it is made:

* numpy 2.4 removed `np.trapz`, which Quantus's AUC calls: it is pointed at `np.trapezoid`.
* Quantus's "black" baseline is the input's smallest value (black only for unnormalised inputs).
  igcam's is the black photo normalised with the preset (what Drop and Deletion already use), so
  the perturbations here are given as a `perturb_func` that writes that black per channel.
* Faithfulness Correlation draws its subsets with `np.random.choice`; the draws are recorded and
  stored, and the Rust test feeds the same subsets to igcam.

ROAD comes from pytorch-grad-cam 1.5.7 (`ROADMostRelevantFirstAverage`, `...LeastRelevant...`,
`ROADCombined`), whose imputation noise is replaced by igcam's documented generator.

The maps are smooth random maps (a bilinear 8x8 grid, min-max scaled), with no ties: Quantus
sorts with numpy's unstable argsort, igcam breaks ties by pixel index. The statistics section
holds scipy's Wilcoxon signed-rank p-values for a few paired samples, and their Holm correction.
"""
import json
import os
import sys

import numpy as np
import scipy.stats
import torch
from PIL import Image

if not hasattr(np, "trapz"):  # numpy >= 2.4: Quantus 0.6 still calls np.trapz
    np.trapz = np.trapezoid

import quantus  # noqa: E402  (after the patch)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NETS = os.path.join(ROOT, "tests", "fixtures", "nets")
OUT = os.path.join(ROOT, "tests", "fixtures", "metrics")
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
SIZE = 64


def faith_net():
    """Two strided convolutions, global average pooling and a linear head over 5 classes."""
    torch.manual_seed(11)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 5))
    with torch.no_grad():
        net[-1].weight.mul_(20.0)
    return net.eval()


def normalise(pixels):
    return ((pixels - MEAN) / STD).transpose(2, 0, 1)


BLACK = normalise(np.zeros((SIZE, SIZE, 3), dtype=np.float32)).reshape(-1)
BLACK_RGB = BLACK.reshape(3, -1)[:, 0]


def to_black(arr, indices, **_):
    """Quantus perturb_func: the given features of each flattened 3-channel image (padded, for
    Region Perturbation) set to igcam's black, a value per channel."""
    out = arr.copy()
    rows = np.arange(arr.shape[0])[:, None]
    out[rows, indices] = BLACK_RGB[indices // (arr.shape[1] // 3)]
    return out


def smooth_map(rng):
    grid = torch.from_numpy(rng.random((1, 1, 6, 6)).astype(np.float32))
    m = torch.nn.functional.interpolate(grid, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    m = m[0, 0].numpy().astype(np.float64)
    m += rng.random(m.shape) * 1e-3  # break the grid's exact ties
    m = (m - m.min()) / (m.max() - m.min())
    return m.astype(np.float32)


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(2026)
    photo = np.asarray(Image.open(os.path.join(NETS, "vgg_tiny_input.png")).convert("RGB"), dtype=np.float32) / 255.0
    x1 = normalise(photo)
    x2 = normalise(photo[:, ::-1].copy())
    model = faith_net()
    torch.onnx.export(model, torch.from_numpy(x1[None]), os.path.join(OUT, "faith_net.onnx"), input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      opset_version=17, dynamo=False)
    with torch.no_grad():
        logits = model(torch.from_numpy(np.stack([x1, x2]))).numpy()
    top = logits.argmax(1)
    # Three explanations: photo/top-1, photo/second class, flipped photo/top-1.
    second = int(np.argsort(-logits[0])[1])
    x = np.stack([x1, x1, x2]).astype(np.float32)
    y = np.array([top[0], second, top[1]])
    a = np.stack([smooth_map(rng) for _ in range(3)])[:, None]
    s = np.zeros_like(a, dtype=bool)
    boxes = [[(15, 10, 50, 35)], [(0, 30, 25, 64)], [(5, 5, 20, 20), (40, 45, 60, 55)]]  # x0, y0, x1, y1
    for i, bs in enumerate(boxes):
        for x0, y0, x1_, y1 in bs:
            s[i, 0, y0:y1, x0:x1_] = True
    common = dict(model=model, x_batch=x, y_batch=y, a_batch=a, s_batch=s, device="cpu", channel_first=True)
    cases = {}

    def record(name, metric, **kw):
        cases[name] = [float(v) for v in np.asarray(metric(**common, **kw), dtype=np.float64).reshape(-1)]

    quiet = dict(disable_warnings=True)
    record("sparseness", quantus.Sparseness(**quiet))
    record("complexity", quantus.Complexity(**quiet))
    record("relevance_mass", quantus.RelevanceMassAccuracy(**quiet))
    record("relevance_rank", quantus.RelevanceRankAccuracy(**quiet))
    record("top_k", quantus.TopKIntersection(k=300, **quiet))
    # Pixel-Flipping ranks channel values (the map broadcast to RGB): a pixel's three copies tie,
    # and numpy's sort orders them as it likes. Quantus gets the order igcam uses (pixels by
    # decreasing map value, ties by index, then R, G, B) written as distinct decreasing values.
    step = 256  # channel values per step: 48 steps; Quantus wants a divisor of H * W
    ranks = np.empty((len(a), 3, SIZE * SIZE))
    for i, ai in enumerate(a):
        order = np.lexsort((np.arange(SIZE * SIZE), -ai.reshape(-1)))
        for r, pixel in enumerate(order):
            ranks[i, :, pixel] = 3 * SIZE * SIZE - 3 * r - np.arange(3)
    flip = quantus.PixelFlipping(features_in_step=step, perturb_func=to_black, return_auc_per_sample=True, **quiet)
    cases["pixel_flipping"] = [float(v) for v in flip(**{**common, "a_batch": ranks.reshape(len(a), 3, SIZE, SIZE)}, softmax=True)]
    # A patch that does not divide 64: Quantus pads by 6 (3 before, 3 after).
    region = quantus.RegionPerturbation(patch_size=10, regions_evaluation=20, order="morf",
                                        perturb_func=to_black, **quiet)
    curves = np.asarray(region(**common, softmax=True), dtype=np.float64)
    cases["region_perturbation"] = [float(v) for v in curves.mean(axis=1)]

    drawn = []
    choice = np.random.choice

    def recording_choice(*args, **kwargs):
        out = choice(*args, **kwargs)
        drawn.append([int(v) for v in out])
        return out

    np.random.seed(7)
    np.random.choice = recording_choice
    try:
        record("faithfulness_correlation", quantus.FaithfulnessCorrelation(
            nr_runs=12, subset_size=1024, perturb_func=to_black, return_aggregate=False, **quiet), softmax=True)
    finally:
        np.random.choice = choice
    # Quantus draws run by run, image by image: regroup as [image][run] -> indices.
    runs = 12
    subsets = [[drawn[r * len(x) + i] for r in range(runs)] for i in range(len(x))]

    # ROAD: pytorch-grad-cam's averages over its percentiles, softmax targets. Its imputation
    # noise (torch.randn_like) is igcam's generator from seed 5, as igcam draws it (the first
    # channels x n values for n imputed pixels), so both add the same noise.
    from pytorch_grad_cam.metrics.road import (ROADCombined, ROADLeastRelevantFirstAverage,
                                               ROADMostRelevantFirstAverage)
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from make_method_fixtures import standard_normals
    randn_like = torch.randn_like
    torch.randn_like = lambda t: torch.from_numpy(standard_normals(5, t.numel()).reshape(tuple(t.shape)))
    try:
        targets = [ClassifierOutputSoftmaxTarget(int(t)) for t in y]
        road_in = (torch.from_numpy(x), a[:, 0], targets, model)
        cases["road_morf"] = [float(v) for v in ROADMostRelevantFirstAverage()(*road_in)]
        cases["road_lerf"] = [float(v) for v in ROADLeastRelevantFirstAverage()(*road_in)]
        cases["road_combined"] = [float(v) for v in ROADCombined()(*road_in)]
    finally:
        torch.randn_like = randn_like

    # Statistics: scipy's two-sided Wilcoxon signed-rank (its defaults) and Holm's correction.
    # Ties are made of whole numbers: differences that tie only up to rounding would tie or not
    # depending on the last bit a JSON reader gets.
    paired = {
        "exact_small": ([0.61, 0.42, 0.77, 0.35, 0.58, 0.91, 0.48, 0.66],
                        [0.52, 0.47, 0.61, 0.22, 0.49, 0.73, 0.51, 0.50]),
        "with_zero_and_ties": ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0],
                               [1.0, 1.5, 2.5, 3.0, 4.0, 7.0, 6.5, 6.0, 8.0, 9.5, 9.0, 10.0]),
        "large": ([float(v) for v in rng.normal(0.5, 0.2, 60)], None),
        "exact_20": ([float(i) for i in range(20)], [float(i - (i + 1) * (1 if i % 3 else -1)) for i in range(20)]),
        "ties_30": ([float(i % 5) for i in range(30)], [float((i * 3) % 4) for i in range(30)]),
    }
    large_a = paired["large"][0]
    paired["large"] = (large_a, [float(v + d) for v, d in zip(large_a, rng.normal(0.03, 0.1, 60))])
    wilcoxon = {}
    for name, (p, q) in paired.items():
        res = scipy.stats.wilcoxon(p, q)
        wilcoxon[name] = {"a": p, "b": q, "statistic": float(res.statistic), "p": float(res.pvalue)}
    raw = [0.01, 0.04, 0.03, 0.2]
    order = np.argsort(raw)
    holm = [0.0] * len(raw)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(raw) - rank) * raw[i]))
        holm[i] = running

    fixture = {
        "quantus": quantus.__version__,
        "size": SIZE,
        "flipped": [False, False, True],
        "targets": [int(v) for v in y],
        "maps": [[float(v) for v in ai.reshape(-1)] for ai in a],
        "boxes": boxes,
        "pixel_flipping_step": step,
        "region_patch": 10,
        "regions": 20,
        "subsets": subsets,
        "metrics": cases,
        "wilcoxon": wilcoxon,
        "holm": {"p": raw, "adjusted": holm},
    }
    with open(os.path.join(OUT, "quantus.json"), "w") as f:
        json.dump(fixture, f, separators=(",", ":"))
    for k, v in cases.items():
        print(f"{k:26s} {v}")
    with torch.no_grad():
        black = torch.from_numpy(np.stack([BLACK.reshape(3, SIZE, SIZE)] * len(x)))
        for name, images in [("photo", torch.from_numpy(x)), ("black", black)]:
            p = torch.softmax(model(images), 1).numpy()
            print(f"softmax of the targets, {name}:", [round(float(p[i, t]), 3) for i, t in enumerate(y)])


if __name__ == "__main__":
    main()
