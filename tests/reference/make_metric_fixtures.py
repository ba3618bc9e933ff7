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
* IROF fails on RGB input as shipped: its default replacement asserts that the mask has the
  image's shape, and IROF hands it a one-channel mask. Its perturb_func here writes igcam's black
  through the mask, broadcast over the channels. skimage's SLIC labels are stored too; igcam's
  SLIC must give them pixel for pixel.

ROAD comes from pytorch-grad-cam 1.5.7 (`ROADMostRelevantFirstAverage`, `...LeastRelevant...`,
`ROADCombined`), whose imputation noise is replaced by igcam's documented generator.

The maps are smooth random maps (a bilinear 8x8 grid, min-max scaled), with no ties: Quantus
sorts with numpy's unstable argsort, igcam breaks ties by pixel index. The statistics section
holds scipy's Wilcoxon signed-rank p-values for a few paired samples, and their Holm correction.
"""
import copy
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_method_fixtures import splitmix64, standard_normals, uniforms  # noqa: E402

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


def road_net(model, x1):
    """faith_net with its head scaled by 10 and shifted so that its logits on the photo are
    0, 0.01, ..., 0.04 (exported as road_net.onnx): its top class changes as pixels are
    imputed, which faith_net's never does, so Quantus's ROAD has something to count."""
    net = copy.deepcopy(model)
    with torch.no_grad():
        net[-1].weight.mul_(10.0)
        net[-1].bias.mul_(10.0)
        logits = net(torch.from_numpy(x1[None]))[0]
        net[-1].bias.sub_(logits - torch.tensor([0.0, 0.01, 0.02, 0.03, 0.04]))
    torch.onnx.export(net, torch.from_numpy(x1[None]), os.path.join(OUT, "road_net.onnx"), input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      opset_version=17, dynamo=False)
    return net


def quantus_road(model, x, y, a):
    """Quantus's ROAD (default percentages 1, 3, ..., 99) on road_net, averaged over them per
    image.

    As shipped it fails on RGB input: it broadcasts the map over the channels and hands
    noisy_linear_imputation indices into channels x pixels, which that reads as pixel indices
    (IndexError). Patched here: `evaluate_batch` ranks the map's own pixels (Quantus's a_size is
    H * W) and passes pixel indices, sorted (the linear system does not depend on their order;
    sorted, noise column j belongs to the j-th imputed pixel, as igcam draws it). The imputation,
    its `np.random.randn` noise (igcam's generator from seed 5) and the check are Quantus's.
    """
    class RoadOnPixels(quantus.ROAD):
        def evaluate_batch(self, model, x_batch, y_batch, a_batch, **kwargs):
            n = len(x_batch)
            order = np.argsort(-a_batch.reshape(n, -1), axis=1, kind="stable")
            results = []
            for p in self.percentages:
                top = order[:, : int(self.a_size * p / 100)]
                x_p = np.stack([self.perturb_func(arr=xe, indices=np.sort(t)) for xe, t in zip(x_batch, top)])
                x_in = model.shape_input(x_p, x_batch.shape, channel_first=True, batched=True)
                results.append(y_batch == np.argmax(model.predict(x_in), axis=-1))
            return [np.stack(results, axis=1).astype(int)]

    randn = np.random.randn
    np.random.randn = lambda *shape: standard_normals(5, int(np.prod(shape))).reshape(shape).astype(np.float64)
    try:
        curves = []
        for i in range(len(x)):  # Quantus returns the accuracy per percentage over the batch
            road = RoadOnPixels(noise=0.01, disable_warnings=True, return_aggregate=False)
            by_percentage = road(model=model, x_batch=x[i:i + 1], y_batch=y[i:i + 1], a_batch=a[i:i + 1],
                                 device="cpu", channel_first=True, softmax=True)
            curves.append([float(v) for v in by_percentage.values()])
    finally:
        np.random.randn = randn
    return curves


def synthetic_image():
    """A 3x160x224 image both sides build from igcam's generator: 8x8 blocks of uniform values
    (seed 31) plus 0.05 times uniform noise (seed 32), in float32."""
    blocks = uniforms(31, 3 * 20 * 28, 0.0, 1.0).astype(np.float32).reshape(3, 20, 28)
    noise = uniforms(32, 3 * 160 * 224, 0.0, 1.0).astype(np.float32).reshape(3, 160, 224)
    return blocks.repeat(8, axis=1).repeat(8, axis=2) + np.float32(0.05) * noise


def superpixels(*images):
    """skimage's SLIC labels as IROF asks for them, run-length coded ([label, run] pairs in
    row-major order): the two fixture images and the synthetic one."""
    from skimage.segmentation import slic
    out = {}
    for name, img in [("photo", images[0]), ("flipped", images[1]), ("synthetic", synthetic_image())]:
        labels = slic(np.moveaxis(img, 0, -1).astype("double"), start_label=0).reshape(-1)
        runs = []
        for v in labels:
            if runs and runs[-1][0] == int(v):
                runs[-1][1] += 1
            else:
                runs.append([int(v), 1])
        out[name] = {"shape": list(img.shape[1:]), "segments": int(labels.max()) + 1, "runs": runs}
    return out


REDO_SEED = 21
REDO_LAYER = 5  # Grad-CAM at the last ReLU: igcam's `/5/Relu_output_0`


def grad_cam(model, x, y):
    """Grad-CAM of the logits `y` at module REDO_LAYER, as igcam's metrics read a map: upsampled
    bilinearly (half-pixel centres) to the input, then min-max scaled (zeros when constant)."""
    kept = {}
    handle = model[REDO_LAYER].register_forward_hook(lambda m, i, o: kept.update(a=o))
    try:
        xs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).requires_grad_(True)
        logits = model(xs)
        a = kept["a"]
        g, = torch.autograd.grad(logits[torch.arange(len(y)), torch.as_tensor(y)].sum(), a)
    finally:
        handle.remove()
    with torch.no_grad():
        cam = torch.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(1, keepdim=True))
        up = torch.nn.functional.interpolate(cam, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
        up = up.reshape(len(y), -1)
        lo, hi = up.min(1, keepdim=True).values, up.max(1, keepdim=True).values
        span = hi - lo
        out = torch.where(span > 0, (up - lo) / torch.where(span > 0, span, 1.0), torch.zeros_like(up))
    return out.numpy().astype(np.float64).reshape(len(y), 1, SIZE, SIZE)


def substream(seed, k):
    """igcam's `random::substream`: seed + (k + 1) * 0xD1B54A32D192ED03, wrapping."""
    return (seed + (k + 1) * 0xD1B54A32D192ED03) % (1 << 64)


def below(seed, n):
    """igcam's `Stream::new(seed).below(n)`: the first draw's top 53 bits as a fraction of n."""
    d = int(splitmix64(seed, 1)[0] >> np.uint64(11))
    return min(int(d / float(1 << 53) * n), n - 1)


def explain_again(model, x, y):
    """Max-Sensitivity, Random Logit and MPRT (Quantus's classes) with Grad-CAM as explain_func,
    fed igcam's noise, other classes and randomised weights:

    * MaxSensitivity's `np.random.uniform` returns igcam's noise of copy s for every image;
    * RandomLogit's `np.random.randint` returns the index, among the other classes, of the class
      igcam draws (`off_class`);
    * MPRT's random layer generator sets each layer, top down, as igcam's cascade does (weights
      then bias uniform in +-1/sqrt(fan_in) from substream(seed, k)), instead of torch's
      `reset_parameters` draws;
    * MPRT with `similarity_func=ssim` fails as shipped (the batched ssim returns a list, which
      MPRT calls `.tolist()` on): the ssim given returns an array.
    """
    from quantus.helpers.model.pytorch_model import PyTorchModel

    explain = lambda model, inputs, targets, **_: grad_cam(model, inputs, targets)  # noqa: E731
    maps = grad_cam(model, x, y)
    common = dict(model=model, x_batch=x, y_batch=y, a_batch=maps, device="cpu", channel_first=True,
                  explain_func=explain)
    out = {"seed": REDO_SEED, "layer": "/5/Relu_output_0", "maps": [[float(v) for v in m.reshape(-1)] for m in maps]}

    samples, radius = 4, 0.2
    calls = []
    real_uniform = np.random.uniform

    def noise(low, high, size):
        s = len(calls)
        calls.append(s)
        row = uniforms(substream(REDO_SEED, s), size[1], -radius, radius).astype(np.float32)
        return np.tile(row, (size[0], 1))

    np.random.uniform = noise
    try:
        ms = quantus.MaxSensitivity(nr_samples=samples, lower_bound=radius, disable_warnings=True)
        out["max_sensitivity"] = [float(v) for v in ms(**common)]
    finally:
        np.random.uniform = real_uniform
    out["ms_samples"], out["ms_radius"] = samples, radius

    classes = 5
    off = []
    for t in y:
        k = below((REDO_SEED + int(t)) % (1 << 64), classes - 1)
        off.append(k + 1 if k >= t else k)
    real_randint = np.random.randint
    np.random.randint = lambda low, high, size: np.array([o - (o > t) for o, t in zip(off, y)])
    try:
        rl = quantus.RandomLogit(num_classes=classes, disable_warnings=True)
        out["random_logit"] = [float(v) for v in rl(**common)]
    finally:
        np.random.randint = real_randint
    out["off_classes"] = [int(o) for o in off]

    def cascade(self, order="top_down", seed=42):
        assert order == "top_down"
        randomised = copy.deepcopy(self.model)
        layers = [m for m in randomised.named_modules() if hasattr(m[1], "reset_parameters")][::-1]
        for k, (name, layer) in enumerate(layers):
            w, b = layer.weight, layer.bias
            bound = 1.0 / np.sqrt(w[0].numel())
            drawn = uniforms(substream(REDO_SEED, k), w.numel() + b.numel(), -bound, bound).astype(np.float32)
            with torch.no_grad():
                w.copy_(torch.from_numpy(drawn[:w.numel()].reshape(tuple(w.shape))))
                b.copy_(torch.from_numpy(drawn[w.numel():]))
            yield name, randomised

    real_generator = PyTorchModel.get_random_layer_generator
    PyTorchModel.get_random_layer_generator = cascade
    try:
        # Quantus's batched ssim returns a list, and MPRT calls `.tolist()` on it: wrapped.
        ssim = lambda a, b, **kw: np.asarray(quantus.similarity_func.ssim(a, b, **kw))  # noqa: E731
        for key, similarity in [("mprt_spearman", None), ("mprt_ssim", ssim)]:
            mprt = quantus.MPRT(similarity_func=similarity, layer_order="top_down", disable_warnings=True)
            scores = mprt(**common)
            out[key] = {k: [float(v) for v in vs] for k, vs in scores.items() if k != "original"}
            average = quantus.MPRT(similarity_func=similarity, layer_order="top_down", disable_warnings=True,
                                   return_average_correlation=True)
            out[key + "_quantus_average"] = [float(v) for v in average(**common)]
    finally:
        PyTorchModel.get_random_layer_generator = real_generator
    return out


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

    # IROF, one image at a time (Quantus pads a batch's curves to its longest, which moves the
    # area of images with fewer superpixels), removing superpixels to igcam's black.
    def mask_to_black(arr, mask, **_):
        return np.where(mask, BLACK.reshape(1, 3, SIZE, SIZE), arr).astype(arr.dtype)

    irof = quantus.IROF(perturb_func=mask_to_black, return_aggregate=False, **quiet)
    cases["irof"] = [float(irof(**{**common, "x_batch": x[i:i + 1], "y_batch": y[i:i + 1], "a_batch": a[i:i + 1],
                                   "s_batch": s[i:i + 1]}, softmax=True)[0]) for i in range(len(x))]
    slics = superpixels(x1, x2)

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
    road_curves = quantus_road(road_net(model, x1), x, y, a)
    cases["road_accuracy"] = [float(np.mean(c)) for c in road_curves]

    redo = explain_again(model, x, y)

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
        "redo": redo,
        "slic": slics,
        "road_accuracy_curves": road_curves,
        "wilcoxon": wilcoxon,
        "holm": {"p": raw, "adjusted": holm},
    }
    with open(os.path.join(OUT, "quantus.json"), "w") as f:
        json.dump(fixture, f, separators=(",", ":"))
    for k, v in list(cases.items()) + [(k, redo[k]) for k in ("max_sensitivity", "random_logit")]:
        print(f"{k:26s} {v}")
    for k in ("mprt_spearman", "mprt_ssim"):
        print(k, {layer: [round(v, 4) for v in vs] for layer, vs in redo[k].items()})
    with torch.no_grad():
        black = torch.from_numpy(np.stack([BLACK.reshape(3, SIZE, SIZE)] * len(x)))
        for name, images in [("photo", torch.from_numpy(x)), ("black", black)]:
            p = torch.softmax(model(images), 1).numpy()
            print(f"softmax of the targets, {name}:", [round(float(p[i, t]), 3) for i, t in enumerate(y)])


if __name__ == "__main__":
    main()
