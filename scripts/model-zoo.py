#!/usr/bin/env python3
"""Which torchvision and timm families (CNNs, vision transformers) load in igcam, and the default layer each gets.

Exports each architecture (seeded random weights; no download) with the legacy exporter at
opset 17 and 13, and with the new exporter (`dynamo=True`, its default external data file) when it is available, runs
`igcam-wgpu layers` on every file and writes the table to docs/models.md.

Usage: python3 scripts/model-zoo.py [--cli PATH] [--out docs/models.md] [--families a,b,...]

With --families, only those are exported again and their rows replace theirs in an existing
--out (a new family's rows go at the end of the table); the rest of the file stays as it is.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

import torch
import torchvision

FAMILIES = ["resnet18", "vgg11", "densenet121", "efficientnet_b0", "mobilenet_v2",
            "mobilenet_v3_small", "googlenet", "inception_v3", "squeezenet1_1",
            "shufflenet_v2_x0_5", "regnet_y_400mf", "convnext_tiny", "mnasnet0_5",
            # timm (when installed): modern families beyond torchvision.
            "timm:efficientnetv2_rw_t", "timm:convnext_atto", "timm:resnetrs50", "timm:ghostnet_100",
            "timm:mobilevit_xxs", "timm:resnest14d",
            # timm vision transformers.
            "timm:vit_small_patch16_224", "timm:deit_tiny_patch16_224", "timm:swin_tiny_patch4_window7_224"]
EXPORTERS = [("legacy, opset 17", dict(opset_version=17, dynamo=False)),
             ("legacy, opset 13", dict(opset_version=13, dynamo=False)),
             ("dynamo (external data)", dict(dynamo=True))]


def build(name):
    torch.manual_seed(0)
    if name.startswith("timm:"):
        import timm
        model = timm.create_model(name.removeprefix("timm:"), pretrained=False).eval()
        return model, min(model.default_cfg.get("input_size", (3, 224, 224))[1], 224)
    kw = {"aux_logits": False, "init_weights": True} if name in ("googlenet", "inception_v3") else {}
    return getattr(torchvision.models, name)(weights=None, **kw).eval(), 299 if name == "inception_v3" else 224


def export(model, size, path, options):
    x = torch.randn(1, 3, size, size)
    torch.onnx.export(model, x, path, input_names=["input"], output_names=["logits"], **options)


def layers(cli, path):
    r = subprocess.run([cli, "layers", path], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        return "no", re.sub(r"^model `[^`]*`: ", "", r.stderr.strip().splitlines()[-1].removeprefix("error: "))
    last = r.stdout.strip().splitlines()[-1]
    return "yes", last.removeprefix("default (*): ")


def explains(cli, path, size, tmp):
    """IG-CAM with a few path steps on a blank photo: does the path run in batches?"""
    from PIL import Image
    image = os.path.join(tmp, "photo.png")
    Image.new("RGB", (size, size), (120, 90, 60)).save(image)
    r = subprocess.run([cli, "explain", image, "--model", path, "--backend", "cpu", "--steps", "4",
                        "--batch", "2", "--quiet", "--out", os.path.join(tmp, "out")],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        return "no: " + re.sub(r"^[^:]*: (model `[^`]*`: )?", "", r.stderr.strip().splitlines()[-1].removeprefix("error: "))
    return "yes"


def timm_version():
    try:
        import timm
        return f"timm {timm.__version__}, "
    except ImportError:
        return ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cli", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "igcam-wgpu"))
    ap.add_argument("--out", default="docs/models.md")
    ap.add_argument("--families", help="comma-separated (default: all of FAMILIES, the file rewritten)")
    args = ap.parse_args()
    families = args.families.split(",") if args.families else FAMILIES
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in families:
            try:
                model, size = build(name)
            except ImportError:  # timm is optional
                continue
            for exporter, options in EXPORTERS:
                path = os.path.join(tmp, f"{name.replace(':', '_')}.onnx")
                try:
                    export(model, size, path, options)
                except Exception as e:  # an exporter that cannot export this family
                    rows.append((name, exporter, "export failed", "—", str(e).splitlines()[0][:120]))
                    continue
                loads, default = layers(args.cli, path)
                explained = explains(args.cli, path, size, tmp) if loads == "yes" else "—"
                rows.append((name, exporter, loads, explained, default))
                print(f"{name:20} {exporter:18} {loads:4} {explained:4} {default}", file=sys.stderr)
    if args.families and os.path.exists(args.out):
        merge(args.out, rows, set(families))
        return
    with open(args.out, "w") as f:
        f.write("# Model families × exporters\n\n")
        f.write("Generated by `scripts/model-zoo.py` (torchvision "
                f"{torchvision.__version__}, {timm_version()}torch {torch.__version__}, random weights): whether\n"
                "`igcam-wgpu layers` loads each export, whether `explain` runs IG-CAM on it (4 path steps\n"
                "in batches of 2, CPU), and the default layer it picks with the rule that chose it (or\n"
                "the error).\n\n")
        f.write("| family | exporter | loads | explains | default layer, or the error |\n"
                "|---|---|---|---|---|\n")
        for r in rows:
            f.write(row(r) + "\n")


def row(cells):
    """One table row."""
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def merge(path, rows, families):
    """`path` with the first table's rows of `families` replaced by `rows` where they were (or
    appended to the table), every other line as it was."""
    lines = open(path).read().split("\n")
    fresh = [row(r) for r in rows]
    out, placed = [], False
    for line in lines:
        family = line[2:].split(" | ")[0] if line.startswith("| ") else None
        if family in families:
            if not placed:
                out.extend(fresh)
                placed = True
            continue
        out.append(line)
    if not placed:
        end = next(i for i, line in enumerate(out) if line.startswith("|"))
        while end < len(out) and out[end].startswith("|"):
            end += 1
        out[end:end] = fresh
    with open(path, "w") as f:
        f.write("\n".join(out))


if __name__ == "__main__":
    main()
