#!/usr/bin/env python3
"""The yardstick: onnxruntime's bare forward passes of an ONNX model, as many as a method needs.

An IG-CAM or Integrated Gradients explanation with m steps runs m forward passes through the
backbone (plus the head's gradients); the best inference engine's time for those m forwards
alone is the floor an explainer can be compared with. Prints the same JSON as
`igcam-wgpu bench --json`:

    python3 bench/ort_reference.py resnet50.onnx --forwards 50 --batch 10 --reps 3 --json ort.json

onnxruntime's CPU execution provider, all cores (its default intra-op threads), every graph
optimisation on. The input is one random 224x224 image (or the model's fixed size) repeated in
chunks of --batch, the same chunks `igcam-wgpu bench` uses; a chunk needs a model with a dynamic
batch dimension (otherwise images go one by one). One warm-up, then --reps timed runs.
"""
import argparse
import json
import resource
import time

import numpy as np
import onnxruntime as ort


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "CPU"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--forwards", type=int, default=50, help="images through the model per run (m)")
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, help="intra-op threads (default: onnxruntime's, all cores)")
    p.add_argument("--json")
    args = p.parse_args()
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if args.threads:
        opts.intra_op_num_threads = args.threads
    session = ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    dims = [d if isinstance(d, int) else None for d in inp.shape]
    dynamic_batch = dims[0] is None
    size = [d if d is not None else 224 for d in dims[1:]]
    batch = args.batch if dynamic_batch else dims[0]
    rng = np.random.default_rng(0)
    image = rng.standard_normal([1] + size).astype(np.float32)
    chunks = [min(batch, args.forwards - i) for i in range(0, args.forwards, batch)]
    feeds = {n: np.repeat(image, n, axis=0) for n in set(chunks)}

    def run():
        for n in chunks:
            session.run(None, {inp.name: feeds[n]})

    run()
    times = []
    for _ in range(args.reps):
        t = time.perf_counter()
        run()
        times.append((time.perf_counter() - t) * 1000.0)
    times.sort()
    median = float(np.percentile(times, 50, method="inverted_cdf"))
    results = [{"method": f"{args.forwards} forwards", "median_ms": median,
                "p90_ms": float(np.percentile(times, 90, method="inverted_cdf")),
                "images_per_s": 1000.0 * args.forwards / median, "reps": args.reps}]
    report = {"tool": f"onnxruntime {ort.__version__}", "backend": "cpu",
              "device": f"{cpu_model()} ({opts.intra_op_num_threads or 'all'} threads)",
              "model": args.model, "steps": args.forwards, "batch": batch, "results": results,
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        open(args.json, "w").write(text)


if __name__ == "__main__":
    main()
