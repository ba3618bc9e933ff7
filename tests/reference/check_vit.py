#!/usr/bin/env python3
"""igcam's maps against pytorch-grad-cam's on full-size vision transformers (run by hand,
outside CI; it prints a table and writes nothing to the repo).

    pip install torch timm transformers grad-cam==1.5.7 onnx onnxscript ./python
    python3 tests/reference/check_vit.py [swin ...]   # only the models whose name holds one of these

timm's `vit_small_patch16_224`, `deit_tiny_patch16_224` and `swin_tiny_patch4_window7_224`,
and Hugging Face's `ViTForImageClassification` (a small config: 6 layers, width 192), seeded
random weights with
random LayerNorm scales and shifts, each exported by the legacy exporter (opset 17) and the new
one (`dynamo=True`). On voc-mini's chelsea photo (resized to 256, centre-cropped to 224):
Grad-CAM at the last block's first normalisation (pytorch-grad-cam's ViT and Swin layer, tokens
read as the 14x14 grid without the class token by its `reshape_transform`; Swin's last stage
as its channels-last 7x7 grid) and IG-CAM m = 16 (the
paper's sum of those Grad-CAM maps over the left Riemann points from black), pytorch-grad-cam
in float64 against igcam's float32 maps (`backend="cpu"`), relative L2.
"""
import glob
import os
import sys
import tempfile
import warnings

import numpy as np
import torch
from pytorch_grad_cam import GradCAM, base_cam
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

import igcam

ONLY = sys.argv[1:]  # read before check_resnet50 clears the command line
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_resnet50 import ROOT, photo  # noqa: E402
from make_transformer_zoo import Logits, randomise_norms  # noqa: E402

warnings.filterwarnings("ignore")
base_cam.scale_cam_image = lambda cam, target_size=None: cam  # raw layer-resolution maps
STEPS = 16


def models():
    """(name, model, target layer, its tokens as a [N, C, h, w] grid)."""
    import timm
    from transformers import ViTConfig, ViTForImageClassification
    for name in ["vit_small_patch16_224", "deit_tiny_patch16_224"]:
        torch.manual_seed(0)
        m = timm.create_model(name, pretrained=False)
        yield f"timm {name}", m, m.blocks[-1].norm1, vit_grid
    torch.manual_seed(0)
    m = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False)
    yield "timm swin_tiny_patch4_window7_224", m, m.layers[-1].blocks[-1].norm1, lambda t: t.permute(0, 3, 1, 2)
    torch.manual_seed(0)
    hf = ViTForImageClassification(ViTConfig(hidden_size=192, num_hidden_layers=6, num_attention_heads=3,
                                             intermediate_size=768, image_size=224, patch_size=16, num_labels=1000,
                                             attn_implementation="eager"))
    yield "HF ViTForImageClassification (6 x 192)", Logits(hf), hf.vit.layers[-1].layernorm_before, vit_grid


def vit_grid(t):
    """ViT's tokens as the 14x14 patch grid, the class token left out."""
    return t[:, 1:, :].reshape(t.size(0), 14, 14, t.size(2)).permute(0, 3, 1, 2)


def gradcam(model, module, grid, x, target):
    with GradCAM(model=model, target_layers=[module], reshape_transform=grid) as cam:
        return np.asarray(cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])[0], dtype=np.float64)


def main():
    paths = sorted(glob.glob(os.path.join(ROOT, "tests/data/voc-mini/JPEGImages/*.jpg")))
    x32 = photo(next(p for p in paths if p.endswith("chelsea.jpg")))[None]
    mean = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
    std = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]
    black32 = ((0 - mean) / std * np.ones((3, 224, 224), np.float32))[None].astype(np.float32)
    print("| model | exporter | igcam layer | Grad-CAM rel. L2 | IG-CAM m = 16 rel. L2 |\n|---|---|---|---|---|")
    for name, model, module, grid in models():
        if ONLY and not any(o in name for o in ONLY):
            continue
        randomise_norms(model)
        model.eval()
        x = torch.from_numpy(x32)
        with torch.no_grad():
            target = int(model(x)[0].argmax())
        m64, x64, b64 = model.double(), x.double(), torch.from_numpy(black32).double()
        want = {"gradcam": gradcam(m64, module, grid, x64, target),
                "igcam": sum(gradcam(m64, module, grid, b64 + (x64 - b64) * (i / STEPS), target)
                             for i in range(STEPS))}
        model.float()
        for tag, options in [("legacy, opset 17", dict(opset_version=17, dynamo=False)), ("dynamo", dict(dynamo=True))]:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "model.onnx")
                torch.onnx.export(model, (x,), path, input_names=["input"], output_names=["logits"], **options)
                explainer = igcam.Explainer(model=path, backend="cpu")  # a path: external weights too
                errors = []
                for method in ["gradcam", "igcam"]:
                    e = explainer.explain(x32, targets=[target], methods=[method], steps=STEPS)[0]
                    w = want[method]
                    errors.append(np.linalg.norm(e.cam - w) / max(np.linalg.norm(w), 1e-30))
                print(f"| {name} | {tag} | `{explainer.default_layer}` | {errors[0]:.2e} | {errors[1]:.2e} |")


if __name__ == "__main__":
    main()
