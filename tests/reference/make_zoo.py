#!/usr/bin/env python3
"""Model-zoo fixtures: each CNN family igcam must reach, narrowed to a few thousand weights
(torchvision's and timm's own classes with small widths and depths, seeded random weights,
realistic BatchNorm statistics), exported three ways: the legacy exporter at opset 17 and 13 and the new
`dynamo=True` exporter, all with a fixed batch of 1.

For each export, `tests/fixtures/zoo/zoo.json` records the tensor that must be the default
layer (the ONNX tensor whose onnxruntime value equals the PyTorch feature map that feeds the
network's pooling), the logits, and the Grad-CAM and IG-CAM (4 path steps) maps at that layer,
computed by PyTorch.
`tests/zoo.rs` checks all of it.

Usage: python3 tests/reference/make_zoo.py     (also run by make_fixtures.py)
"""
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.models import convnext, densenet, efficientnet, mobilenetv3, regnet, shufflenetv2, squeezenet
from torchvision.models.googlenet import BasicConv2d, GoogLeNet, Inception

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "zoo")
SIZE = 128
STEPS = 4
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
EXPORTERS = [("opset17", dict(opset_version=17, dynamo=False)),
             ("opset13", dict(opset_version=13, dynamo=False)),
             ("dynamo", dict(dynamo=True, external_data=False))]


def randomise_bn(model, affine=True):
    """Realistic BatchNorm statistics (deep random nets are degenerate without them). With
    `affine=False` the scales and shifts keep their defaults, so equal initialisers remain for
    the legacy exporter to de-duplicate (DenseNet)."""
    g = torch.Generator().manual_seed(7)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) * 1.5 + 0.3)
            if affine:
                m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)


def calibrate_bn(model, forward):
    """BatchNorm statistics as the cumulative mean over one training-mode `forward()` (the
    photos): realistic statistics for a random network."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        forward()
    model.eval()


def narrow_googlenet():
    """torchvision's GoogLeNet with every block narrowed (the last block's Concat feeds the pooling)."""
    m = GoogLeNet(num_classes=10, aux_logits=False, init_weights=True)
    conv, inc = BasicConv2d, Inception
    m.conv1, m.conv2, m.conv3 = conv(3, 8, kernel_size=7, stride=2, padding=3), conv(8, 8, kernel_size=1), conv(8, 16, kernel_size=3, padding=1)
    m.inception3a = inc(16, 8, 4, 8, 2, 4, 4)
    for name in ["inception3b", "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "inception5a"]:
        setattr(m, name, inc(24, 8, 4, 8, 2, 4, 4))
    m.inception5b = inc(24, 8, 4, 16, 2, 4, 4)
    m.fc = torch.nn.Linear(32, 10)
    return m, lambda x: m.inception5b(m.inception5a(m.maxpool4(m.inception4e(m.inception4d(m.inception4c(m.inception4b(m.inception4a(
        m.maxpool3(m.inception3b(m.inception3a(m.maxpool2(m.conv3(m.conv2(m.maxpool1(m.conv1(x)))))))))))))))), \
        lambda a: m.fc(torch.flatten(m.avgpool(a), 1))


def narrow_inception_v3():
    """torchvision's Inception-v3 blocks (InceptionA, and InceptionE with its nested Concats)
    with every convolution narrowed, between a small stem and the network's own head."""
    from torchvision.models.inception import BasicConv2d as C, InceptionA, InceptionE
    a = InceptionA(16, pool_features=4)
    a.branch1x1, a.branch5x5_1, a.branch5x5_2 = C(16, 8, kernel_size=1), C(16, 4, kernel_size=1), C(4, 8, kernel_size=5, padding=2)
    a.branch3x3dbl_1, a.branch3x3dbl_2 = C(16, 4, kernel_size=1), C(4, 8, kernel_size=3, padding=1)
    a.branch3x3dbl_3 = C(8, 8, kernel_size=3, padding=1)
    e = InceptionE(28)
    e.branch1x1, e.branch3x3_1 = C(28, 8, kernel_size=1), C(28, 4, kernel_size=1)
    e.branch3x3_2a, e.branch3x3_2b = C(4, 4, kernel_size=(1, 3), padding=(0, 1)), C(4, 4, kernel_size=(3, 1), padding=(1, 0))
    e.branch3x3dbl_1, e.branch3x3dbl_2 = C(28, 4, kernel_size=1), C(4, 4, kernel_size=3, padding=1)
    e.branch3x3dbl_3a, e.branch3x3dbl_3b = C(4, 4, kernel_size=(1, 3), padding=(0, 1)), C(4, 4, kernel_size=(3, 1), padding=(1, 0))
    e.branch_pool = C(28, 4, kernel_size=1)
    features = torch.nn.Sequential(C(3, 16, kernel_size=3, stride=2), torch.nn.MaxPool2d(3, 2), C(16, 16, kernel_size=3, stride=2),
                                   a, torch.nn.MaxPool2d(3, 2), e)
    m = torch.nn.Sequential(features, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(28, 10))
    return m, features, lambda f: m[3](m[2](m[1](f)))


def narrow_squeezenet():
    """torchvision's SqueezeNet 1.1 with narrow Fire blocks and its 1×1-convolution classifier."""
    m = squeezenet.SqueezeNet("1_1", num_classes=10)
    fire = squeezenet.Fire
    m.features = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, stride=2), torch.nn.ReLU(inplace=True), torch.nn.MaxPool2d(3, 2, ceil_mode=True),
        fire(16, 4, 8, 8), fire(16, 4, 8, 8), torch.nn.MaxPool2d(3, 2, ceil_mode=True), fire(16, 8, 16, 16))
    m.classifier[1] = torch.nn.Conv2d(32, 10, 1)
    return m, m.features, lambda a: torch.flatten(m.classifier(a), 1)


def narrow_timm():
    """timm's ResNeSt (split attention: rank-5 sums and broadcasts) and MobileViT (attention
    heads through rank-5 tensors, the batch folded with patches), narrowed."""
    from timm.models.byobnet import ByobNet, ByoModelCfg
    from timm.models.mobilevit import _inverted_residual_block, _mobilevit_block
    from timm.models.resnest import ResNestBottleneck
    from timm.models.resnet import ResNet
    torch.manual_seed(8)
    rs = ResNet(block=ResNestBottleneck, layers=[1, 1, 1, 1], stem_type="deep", stem_width=8, avg_down=True,
                base_width=64, cardinality=1, block_args=dict(radix=2, avd=True, avd_first=False), num_classes=10,
                channels=(8, 16, 24, 32))
    yield "resnest", rs, rs.forward_features, rs.forward_head
    torch.manual_seed(9)
    cfg = ByoModelCfg(
        blocks=(_inverted_residual_block(d=1, c=8, s=1, br=2.0), _inverted_residual_block(d=1, c=12, s=2, br=2.0),
                _mobilevit_block(d=1, c=16, s=2, transformer_dim=16, transformer_depth=1, patch_size=2, br=2.0),
                _mobilevit_block(d=1, c=24, s=2, transformer_dim=24, transformer_depth=1, patch_size=2, br=2.0)),
        stem_chs=8, stem_type="3x3", stem_pool="", downsample="", act_layer="silu", num_features=32)
    mv = ByobNet(cfg, num_classes=10)
    yield "mobilevit", mv, mv.forward_features, mv.forward_head


def families():
    """(name, model, features, head): `head(features(x))` is the model's output, and
    `features(x)` is the map the default layer must be."""
    torch.manual_seed(0)
    eff = efficientnet.EfficientNet(
        [efficientnet.MBConvConfig(1, 3, 1, 8, 8, 1), efficientnet.MBConvConfig(4, 3, 2, 8, 16, 2),
         efficientnet.MBConvConfig(4, 5, 2, 16, 24, 1), efficientnet.MBConvConfig(4, 3, 2, 24, 32, 1)],
        dropout=0.0, num_classes=10, last_channel=64)
    yield "efficientnet", eff, eff.features, lambda a: eff.classifier(torch.flatten(eff.avgpool(a), 1))
    torch.manual_seed(1)
    setting, _ = mobilenetv3._mobilenet_v3_conf("mobilenet_v3_small", width_mult=0.25)
    mob = mobilenetv3.MobileNetV3(setting, 64, num_classes=10)
    yield "mobilenet_v3_small", mob, mob.features, lambda a: mob.classifier(torch.flatten(mob.avgpool(a), 1))
    torch.manual_seed(2)
    goo, features, head = narrow_googlenet()
    yield "googlenet", goo, features, head
    torch.manual_seed(10)
    inc, features, head = narrow_inception_v3()
    yield "inception_v3", inc, features, head
    torch.manual_seed(3)
    sq, features, head = narrow_squeezenet()
    yield "squeezenet", sq, features, head
    torch.manual_seed(4)
    dn = densenet.DenseNet(growth_rate=4, block_config=(2, 2), num_init_features=8, bn_size=2, num_classes=10)
    yield "densenet", dn, lambda x: F.relu(dn.features(x)), lambda a: dn.classifier(torch.flatten(F.adaptive_avg_pool2d(a, 1), 1))
    torch.manual_seed(5)
    sh = shufflenetv2.ShuffleNetV2([1, 1, 1], [8, 16, 32, 64, 64], num_classes=10)
    yield "shufflenet_v2", sh, lambda x: sh.conv5(sh.stage4(sh.stage3(sh.stage2(sh.maxpool(sh.conv1(x)))))), \
        lambda a: sh.fc(a.mean([2, 3]))
    torch.manual_seed(6)
    cn = convnext.ConvNeXt([convnext.CNBlockConfig(16, 32, 1), convnext.CNBlockConfig(32, 64, 1), convnext.CNBlockConfig(64, None, 1)],
                           layer_scale=0.5, num_classes=10)
    yield "convnext", cn, cn.features, lambda a: cn.classifier(cn.avgpool(a))
    torch.manual_seed(7)
    rg = regnet.RegNet(regnet.BlockParams.from_init_params(depth=4, w_0=8, w_a=8.0, w_m=2.0, group_width=8, se_ratio=0.25),
                       stem_width=8, num_classes=10)
    yield "regnet_y", rg, lambda x: rg.trunk_output(rg.stem(x)), lambda a: rg.fc(torch.flatten(rg.avgpool(a), 1))
    yield from narrow_timm()


def photo():
    """The shared input: the chelsea photo, centre-cropped and resized to SIZE (saved as PNG),
    and the black baseline, both normalised."""
    img = Image.open(os.path.join(ROOT, "assets", "images", "chelsea.png")).convert("RGB")
    w, h = img.size
    s = min(w, h)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)).resize((SIZE, SIZE), Image.BILINEAR)
    path = os.path.join(OUT, "input.png")
    img.save(path)
    pix = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    x = torch.from_numpy(((pix - MEAN) / STD).transpose(2, 0, 1)[None].copy())
    black = torch.from_numpy(((np.zeros_like(pix) - MEAN) / STD).transpose(2, 0, 1)[None].copy())
    return x, black


def tensors_equal_to(path, x, a):
    """Names of the float tensors of the ONNX model at `path` whose onnxruntime value on `x`
    equals `a` (shape and values)."""
    model = onnx.shape_inference.infer_shapes(onnx.load(path))
    outputs = {o.name for o in model.graph.output}
    for vi in model.graph.value_info:
        if vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT and vi.name not in outputs:
            model.graph.output.append(vi)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    values = sess.run(names, {sess.get_inputs()[0].name: x.numpy()})
    want = a.numpy()
    return [n for n, v in zip(names, values)
            if v.shape == want.shape and np.allclose(v, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())]


def export(model, x, path, options, output="logits"):
    """`model` exported to `path` with `options` (one of EXPORTERS), without the stack trace
    the new exporter stores with every node (two thirds of the file)."""
    torch.onnx.export(model, (x,), path, input_names=["input"], output_names=[output], **options)
    if options["dynamo"]:
        m = onnx.load(path)
        for n in m.graph.node:
            del n.metadata_props[:]
        onnx.save(m, path)


def arr(a):
    a = np.asarray(a, dtype=np.float32)
    return {"shape": list(a.shape), "values": [float(v) for v in a.reshape(-1)]}


def main():
    os.makedirs(OUT, exist_ok=True)
    x, black = photo()
    cases = []
    for name, model, features, head in families():
        randomise_bn(model, affine=name != "densenet")
        model.eval()
        with torch.no_grad():
            logits = model(x)
            assert torch.allclose(head(features(x)), logits, atol=1e-5), name
        target = int(logits[0].argmax())

        def gradcam_at(image):
            a = features(image).detach().requires_grad_(True)
            g = torch.autograd.grad(head(a)[0, target], a)[0]
            return a.detach(), torch.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(dim=1))[0].detach()

        a, gradcam = gradcam_at(x)
        # IG-CAM: Grad-CAM terms summed along the straight path from black, left Riemann points.
        igcam = sum(gradcam_at(black + (x - black) * (i / STEPS))[1] for i in range(STEPS))
        for tag, options in EXPORTERS:
            file = f"{name}_{tag}.onnx"
            path = os.path.join(OUT, file)
            try:
                export(model, x, path, options)
            except torch.onnx.errors.UnsupportedOperatorError as e:
                # MobileViT's attention needs opset 14: PyTorch cannot export it at 13.
                print(f"{file:34s} not exportable: {str(e).splitlines()[0][:90]}")
                continue
            layer = tensors_equal_to(path, x, a)
            assert len(layer) == 1, f"{file}: the feature map is {layer}"
            cases.append({"family": name, "exporter": tag, "model": file, "layer": layer[0], "target": target,
                          "logits": arr(logits[0]), "gradcam": arr(gradcam), "igcam": arr(igcam)})
            print(f"{file:34s} {os.path.getsize(path):7d} bytes  layer {layer[0]}")
    with open(os.path.join(OUT, "zoo.json"), "w") as f:
        json.dump({"size": SIZE, "steps": STEPS, "cases": cases}, f, indent=1)


if __name__ == "__main__":
    main()
