#!/usr/bin/env python3
"""Vision-transformer fixtures for the model zoo: timm's ViT, timm's distilled DeiT (two
leading tokens), Hugging Face's `ViTForImageClassification` and timm's Swin (channels-last
`[N, h, w, C]` tokens, shifted windows partitioned through rank-6 tensors), narrowed to a few
tens of thousands of weights (their own classes with small widths and depths, seeded random
weights), exported by the legacy exporter at opset 17 and 13 (where PyTorch can) and by the
new `dynamo=True` exporter, all with a fixed batch of 1.

For each export, `tests/fixtures/zoo/transformers.json` records (in zoo.json's format) the
tensor that must be the default layer (the ONNX tensor whose onnxruntime value equals the
output of the last block's first normalisation, pytorch-grad-cam's ViT and Swin target
layer), the
logits, and pytorch-grad-cam's own Grad-CAM map there (its `reshape_transform` leaving the
leading tokens out, its final scaling and resize turned off; float64) and IG-CAM (4 path
steps: the sum of pytorch-grad-cam's Grad-CAM maps at the left Riemann points from black).
`tests/zoo.rs` checks all of it. With family names, only those are made again and replace
their cases in the file (the others' exports stay as they are).

    pip install torch timm transformers grad-cam==1.5.7 onnx onnxruntime onnxscript
    python3 tests/reference/make_transformer_zoo.py [swin ...]
"""
import json
import os
import sys
import warnings

import numpy as np
import torch
from pytorch_grad_cam import GradCAM, base_cam
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_zoo as zoo  # noqa: E402

warnings.filterwarnings("ignore")
base_cam.scale_cam_image = lambda cam, target_size=None: cam  # raw layer-resolution maps
PATCH = 16
GRID = zoo.SIZE // PATCH


class Logits(torch.nn.Module):
    """Hugging Face's model returning its logits tensor (what an ONNX export gives)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(pixel_values=x).logits


def families():
    """(name, model, target layer, leading tokens; None for channels-last `[N, h, w, C]`)."""
    from timm.models.deit import VisionTransformerDistilled
    from timm.models.vision_transformer import VisionTransformer
    from transformers import ViTConfig, ViTForImageClassification
    small = dict(img_size=zoo.SIZE, patch_size=PATCH, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0, num_classes=10)
    torch.manual_seed(20)
    vit = VisionTransformer(**small)
    yield "vit", vit, vit.blocks[-1].norm1, 1
    torch.manual_seed(21)
    deit = VisionTransformerDistilled(**small)
    yield "deit_distilled", deit, deit.blocks[-1].norm1, 2
    torch.manual_seed(22)
    hf = ViTForImageClassification(ViTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=zoo.SIZE,
        patch_size=PATCH, num_labels=10, attn_implementation="eager"))
    yield "hf_vit", Logits(hf), hf.vit.layers[-1].layernorm_before, 1
    from timm.models.swin_transformer import SwinTransformer
    torch.manual_seed(23)
    # A 16x16 patch grid, 4x4 windows (shifted in every second block), merged once to the 8x8
    # grid of the last stage, whose tokens stay channels-last.
    swin = SwinTransformer(img_size=zoo.SIZE, patch_size=PATCH // 2, window_size=4, embed_dim=16, depths=(2, 2),
                           num_heads=(1, 2), mlp_ratio=2.0, num_classes=10)
    yield "swin", swin, swin.layers[-1].blocks[-1].norm1, None


def randomise_norms(model):
    """Non-trivial LayerNorm scales and shifts (their defaults 1 and 0 would make a decomposed
    normalisation's last three tensors equal)."""
    g = torch.Generator().manual_seed(7)
    for m in model.modules():
        if isinstance(m, torch.nn.LayerNorm):
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)


def gradcam(model, module, leading, x, target):
    """pytorch-grad-cam's Grad-CAM of `target` at `module`, tokens as the patch grid."""
    def grid(t):
        if leading is None:
            return t.permute(0, 3, 1, 2)
        return t[:, leading:, :].reshape(t.size(0), GRID, GRID, t.size(2)).permute(0, 3, 1, 2)
    with GradCAM(model=model, target_layers=[module], reshape_transform=grid) as cam:
        return np.asarray(cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])[0], dtype=np.float64)


def main():
    only = set(sys.argv[1:])
    x, black = zoo.photo()
    cases = []
    for name, model, module, leading in families():
        if only and name not in only:
            continue
        randomise_norms(model)
        model.eval()
        with torch.no_grad():
            logits = model(x)
        target = int(logits[0].argmax())
        store = {}
        handle = module.register_forward_hook(lambda m, i, o: store.__setitem__("a", o.detach().clone()))
        with torch.no_grad():
            model(x)
        handle.remove()
        model64 = model.double()
        x64, black64 = x.double(), black.double()
        maps = {"gradcam": gradcam(model64, module, leading, x64, target),
                "igcam": sum(gradcam(model64, module, leading, black64 + (x64 - black64) * (i / zoo.STEPS), target)
                             for i in range(zoo.STEPS))}
        model.float()
        for tag, options in zoo.EXPORTERS:
            file = f"{name}_{tag}.onnx"
            path = os.path.join(zoo.OUT, file)
            try:
                zoo.export(model, x, path, options)
            except Exception as e:  # noqa: BLE001 (PyTorch raises several kinds for an op it cannot export)
                print(f"{file:34s} not exportable: {str(e).splitlines()[0][:90]}")
                if os.path.exists(path):
                    os.remove(path)
                continue
            layer = zoo.tensors_equal_to(path, x, store["a"])
            assert len(layer) == 1, f"{file}: the target layer's tokens are {layer}"
            cases.append({"family": name, "exporter": tag, "model": file, "layer": layer[0], "target": target,
                          "leading": leading, "logits": zoo.arr(logits[0]),
                          "gradcam": zoo.arr(maps["gradcam"]), "igcam": zoo.arr(maps["igcam"])})
            print(f"{file:34s} {os.path.getsize(path):7d} bytes  layer {layer}")
    out = os.path.join(zoo.OUT, "transformers.json")
    if only:
        with open(out) as f:
            kept = [c for c in json.load(f)["cases"] if c["family"] not in only]
        cases = kept + cases
    with open(out, "w") as f:
        json.dump({"size": zoo.SIZE, "steps": zoo.STEPS, "cases": cases}, f, indent=1)


if __name__ == "__main__":
    main()
