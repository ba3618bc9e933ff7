#!/usr/bin/env python3
"""A small classifier whose reverse pass crosses `Softmax`, `Transpose`, `Slice`, `Split` and
`Concat` (a YOLO head's DFL and output split), exported by the legacy exporter at opset 17 and
by dynamo, with PyTorch's input gradient of every logit (float64) at a seeded input:
`tests/numerics_cpu.rs` checks that igcam's host reverse pass takes these ops and gives the
same gradients.

    pip install torch onnx onnxscript
    python3 tests/reference/make_gradient_ops.py
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_zoo as zoo  # noqa: E402

OUT = os.path.join(zoo.ROOT, "tests", "fixtures", "grad")


class ShapeOps(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, 5)

    def forward(self, x):
        s = torch.softmax(self.conv(x), dim=1)
        t = s.transpose(2, 3)[:, :, :, 1:7]
        a, b = torch.split(t, [3, 5], dim=2)
        return self.fc(torch.cat([b, a], dim=2).mean(dim=(2, 3)))


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(50)
    model = ShapeOps().eval()
    x = torch.randn(1, 3, 8, 8)
    x64, m64 = x.double().requires_grad_(True), ShapeOps().double().eval()
    m64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    logits = m64(x64)[0]
    grads = [torch.autograd.grad(logits[c], x64, retain_graph=True)[0] for c in range(5)]
    for tag, options in [e for e in zoo.EXPORTERS if e[0] in ("opset17", "dynamo")]:
        zoo.export(model, x, os.path.join(OUT, f"shape_ops_{tag}.onnx"), options)
    with open(os.path.join(OUT, "shape_ops.json"), "w") as f:
        json.dump({"x": zoo.arr(x), "logits": zoo.arr(logits.detach()),
                   "gradients": [zoo.arr(g.detach()) for g in grads]}, f)


if __name__ == "__main__":
    main()
