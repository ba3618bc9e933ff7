#!/usr/bin/env python3
"""Time the igcam methods in PyTorch on the torchvision (or timm ViT) model igcam's ONNX export came from.

Prints the same JSON as `igcam-wgpu bench --json`, so one script can report ratios:

    python3 models/export_torchvision.py resnet50 /tmp/resnet50.onnx --random
    igcam-wgpu bench --model /tmp/resnet50.onnx --backend cpu --steps 50 --reps 5 --json burn.json
    python3 bench/torch_reference.py resnet50 --steps 50 --reps 5 --json torch.json   # --device cuda on a GPU

Same protocol as `bench`: the default layer (ResNet-50 layer4 / VGG-16 features.29), the path
pushed through in chunks of --batch steps, one warm-up, then --reps timed runs each ending in a
copy of the map to the host (so the device is synchronised). Threads: torch's default.
"""
import argparse
import json
import resource
import sys
import time

import numpy as np
import torch
import torchvision

LAYERS = {"resnet50": "layer4", "vgg16": "features.29",
          # timm's ViT-S/16 at pytorch-grad-cam's ViT layer (the last block's first normalisation),
          # its tokens read as the 14x14 patch grid without the class token.
          "vit_small_patch16_224": "blocks.11.norm1",
          # timm's Swin-T at pytorch-grad-cam's Swin layer (the last stage's last block's first
          # normalisation), its channels-last tokens [N, 7, 7, C] as the [N, C, 7, 7] grid.
          "swin_tiny_patch4_window7_224": "layers.3.blocks.1.norm1"}
CHANNELS_LAST = {"swin_tiny_patch4_window7_224"}


def build(arch):
    """The seeded model (torchvision, or timm for the transformers)."""
    torch.manual_seed(0)
    if arch.startswith(("vit_", "swin_")):
        import timm
        return timm.create_model(arch, pretrained=False).eval()
    return getattr(torchvision.models, arch)(weights=None).eval()


def as_grid(t, channels_last=False):
    """Feature maps as they are; ViT tokens [N, 1 + h*w, C] as the [N, C, h, w] patch grid;
    Swin's channels-last [N, h, w, C] permuted to it."""
    if channels_last:
        return t.permute(0, 3, 1, 2)
    if t.dim() == 4:
        return t
    n, tokens, c = t.shape
    side = int(round((tokens - 1) ** 0.5))
    return t[:, 1:, :].reshape(n, side, side, c).permute(0, 3, 1, 2)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("arch", choices=sorted(LAYERS))
    p.add_argument("--methods", default="igcam,gradcam")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--tf32", action="store_true", help="allow TF32 matmuls/convs on CUDA")
    p.add_argument("--json")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--export", metavar="ONNX", help="also write the model (legacy exporter, opset 17) for igcam's bench")
    p.add_argument("--profile", action="store_true",
                   help="after the timings, print torch.profiler's per-op table for one run of each method")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    dev = torch.device(args.device)
    model = build(args.arch).to(dev)
    if args.export:
        torch.onnx.export(model, torch.zeros(1, 3, 224, 224, device=dev), args.export, input_names=["input"],
                          output_names=["logits"], opset_version=17, dynamo=False)
    module = dict(model.named_modules())[LAYERS[args.arch]]
    x = torch.randn(1, 3, 224, 224, device=dev)
    b = torch.zeros_like(x)
    target = int(model(x)[0].argmax())
    store = {}
    module.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))

    def cam(alphas):
        total = 0
        for chunk in [alphas[i:i + args.batch] for i in range(0, len(alphas), args.batch)]:
            a = torch.tensor(chunk, device=dev).view(-1, 1, 1, 1)
            out = model(b + (x - b) * a)
            last = args.arch in CHANNELS_LAST
            g = as_grid(torch.autograd.grad(out[:, target].sum(), store["a"])[0], last)
            act = as_grid(store["a"], last)
            total = total + torch.relu((g.mean(dim=(2, 3), keepdim=True) * act).sum(1)).sum(0)
        return total.detach().cpu().numpy()

    def ig(alphas):
        grads = 0
        for chunk in [alphas[i:i + args.batch] for i in range(0, len(alphas), args.batch)]:
            a = torch.tensor(chunk, device=dev).view(-1, 1, 1, 1)
            xi = (b + (x - b) * a).requires_grad_(True)
            grads = grads + torch.autograd.grad(model(xi)[:, target].sum(), xi)[0].sum(0)
        return ((x - b)[0] * grads / len(alphas)).sum(0).detach().cpu().numpy()

    runs = {
        "igcam": lambda: cam([i / args.steps for i in range(args.steps)]),
        "gradcam": lambda: cam([1.0]),
        "ig": lambda: ig([i / args.steps for i in range(args.steps)]),
    }
    results = []
    for method in args.methods.split(","):
        fn = runs[method]
        fn()
        times = []
        for _ in range(args.reps):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1000.0)
        times.sort()
        median = float(np.percentile(times, 50, method="inverted_cdf"))
        results.append({"method": method, "median_ms": median,
                         "p90_ms": float(np.percentile(times, 90, method="inverted_cdf")),
                         "images_per_s": 1000.0 / median, "reps": args.reps})
    if args.profile:
        from torch.profiler import ProfilerActivity, profile
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
        for method in args.methods.split(","):
            with profile(activities=activities) as prof:
                runs[method]()
            sort = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
            print(f"# torch.profiler, {method}: one run, by self time", file=sys.stderr)
            print(prof.key_averages().table(sort_by=sort, row_limit=15), file=sys.stderr)
    device = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    report = {"tool": "pytorch", "backend": dev.type, "device": device, "model": args.arch, "steps": args.steps,
              "batch": args.batch, "results": results,
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        open(args.json, "w").write(text)


if __name__ == "__main__":
    main()
