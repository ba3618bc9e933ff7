#!/usr/bin/env python3
"""A small classifier whose head, after its first convolution, crosses every op family igcam's
Hessian-vector product has a rule for (ShapleyCAM's `H·A`): SiLU (`Sigmoid` times its input: a
product of two moving values), max pooling, batch normalisation, `Pad`, a convolution,
HardSwish, `ReduceMean`, HardSigmoid, a broadcast product, Softmax, `Transpose`, `Slice`,
`Split`, `Concat`, LeakyReLU, average pooling, arithmetic with constants, ReLU6 (`Clip`),
`Flatten` and `Gemm`. Exported by the legacy exporter at opset 17 and by dynamo, with
PyTorch's double backward (float64) at a seeded input: for every logit `c`, the gradient
`g = dS_c/dA` at the first convolution's output `A` and `H·A = autograd.grad(g, A,
grad_outputs=A)`, as pytorch-grad-cam's ShapleyCAM takes it. `tests/numerics_cpu.rs` checks
igcam's product against it.

    pip install torch onnx onnxscript onnxruntime
    python3 tests/reference/make_hessian_ops.py
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_zoo as zoo  # noqa: E402

OUT = os.path.join(zoo.ROOT, "tests", "fixtures", "grad")


class SecondOrderOps(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.conv = torch.nn.Conv2d(8, 8, 3)
        self.fc = torch.nn.Linear(16, 5)
        # PyTorch has no double backward of `hardsigmoid`: the float64 reference computes it as
        # `relu6(x + 3) / 6`, the same function (piecewise linear, so its second derivative is 0).
        self.hardsigmoid = F.hardsigmoid

    def forward(self, x):
        h = F.max_pool2d(F.silu(self.stem(x)), 3, 2, 1)
        h = F.hardswish(self.conv(F.pad(self.bn(h), (1, 1, 1, 1))))
        h = h * self.hardsigmoid(h.mean(dim=(2, 3), keepdim=True) * 4.0)
        s = torch.softmax(h * 2.0, dim=1)
        t = s.transpose(2, 3)[:, :, :, 1:3]
        p, q = torch.split(t, [1, 3], dim=2)
        h = F.leaky_relu(torch.cat([q, p * 2.0], dim=2) * 8.0 - 0.5, 0.1)
        h = F.avg_pool2d(h, 2) / 0.5
        return self.fc(torch.flatten(torch.sigmoid(h) * F.relu6(h * 3.0), 1))


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(51)
    model = SecondOrderOps().eval()
    zoo.randomise_bn(model)
    x = torch.randn(1, 3, 8, 8)
    m64 = SecondOrderOps().double().eval()
    m64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    m64.hardsigmoid = lambda v: F.relu6(v + 3.0) / 6.0
    a = m64.stem(x.double()).detach().requires_grad_(True)
    handle = m64.stem.register_forward_hook(lambda m, i, o: a)
    logits = m64(x.double())[0]
    handle.remove()
    grads, products = [], []
    for c in range(len(logits)):
        g = torch.autograd.grad(logits[c], a, retain_graph=True, create_graph=True)[0]
        hv = torch.autograd.grad(g, a, grad_outputs=a.detach(), retain_graph=True)[0]
        grads.append(zoo.arr(g.detach()))
        products.append(zoo.arr(hv.detach()))
        print(f"logit {c}: |g| {float(g.norm()):.3e} |H·A| {float(hv.norm()):.3e}")
    layers = {}
    for tag, options in [e for e in zoo.EXPORTERS if e[0] in ("opset17", "dynamo")]:
        path = os.path.join(OUT, f"hessian_ops_{tag}.onnx")
        zoo.export(model, x, path, options)
        found = zoo.tensors_equal_to(path, x, model.stem(x).detach())
        assert len(found) == 1, f"{tag}: the layer is {found}"
        layers[tag] = found[0]
        print(tag, "layer", found[0])
    with open(os.path.join(OUT, "hessian_ops.json"), "w") as f:
        json.dump({"x": zoo.arr(x), "layers": layers, "logits": zoo.arr(logits.detach()),
                   "gradients": grads, "products": products}, f)


if __name__ == "__main__":
    main()
