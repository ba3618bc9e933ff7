#!/usr/bin/env python3
"""Export a torchvision ImageNet classifier to ONNX for igcam (needs internet for the weights).

    pip install torch torchvision onnx
    python3 models/export_torchvision.py vgg16  [OUT.onnx]     # layer: /features/features.29/Relu_output_0
    python3 models/export_torchvision.py resnet50 [OUT.onnx]   # layer: /layer4/layer4.2/relu_2/Relu_output_0
    python3 models/export_torchvision.py resnet50 --random     # random weights, no download (for tests)

The legacy TorchScript exporter (dynamo=False, opset 17) folds BatchNorm into the convolutions and
keeps PyTorch's module names in the ONNX tensor names, so `--layer` names read like the modules.
The batch dimension is dynamic, which lets igcam push several path steps through at once.
"""
import argparse

import torch
import torchvision

WEIGHTS = {"vgg16": "VGG16_Weights.IMAGENET1K_V1", "resnet50": "ResNet50_Weights.IMAGENET1K_V2"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("arch", choices=sorted(WEIGHTS))
    p.add_argument("out", nargs="?")
    p.add_argument("--random", action="store_true", help="seeded random weights instead of the ImageNet ones")
    args = p.parse_args()
    torch.manual_seed(0)
    weights = None if args.random else WEIGHTS[args.arch]
    model = getattr(torchvision.models, args.arch)(weights=weights).eval()
    out = args.out or f"{args.arch}.onnx"
    torch.onnx.export(
        model, torch.zeros(1, 3, 224, 224), out, dynamo=False, opset_version=17,
        input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    print(f"wrote {out}; list its layers with: igcam-wgpu layers {out}")


if __name__ == "__main__":
    main()
