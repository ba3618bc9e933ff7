"""igcam's maps against the peers' own code, computed in float64 on the same PyTorch modules:
pytorch-grad-cam 1.5.7 (Grad-CAM, Grad-CAM++, XGrad-CAM, LayerCAM) on a ``from_torch`` ResNet-18
and on a torchvision MobileNetV2 exported to a file; Captum 0.9 (LayerGradCam and
IntegratedGradients) on the ResNet-18."""

import copy

import numpy as np
import pytest
import torch

import igcam
from conftest import rel_l2

from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, LayerCAM, XGradCAM, base_cam
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

PEERS = {"gradcam": GradCAM, "gradcampp": GradCAMPlusPlus, "xgradcam": XGradCAM, "layercam": LayerCAM}
TOLERANCE = 1e-4


def grad_cam_raw(model, layer, x, targets, cls):
    """pytorch-grad-cam's map at the layer's resolution (its final min-max scaling and resize
    turned off, as tests/reference/make_method_fixtures.py does), in float64."""
    scale = base_cam.scale_cam_image
    base_cam.scale_cam_image = lambda cam, target_size=None: cam
    try:
        with cls(model=model, target_layers=[layer]) as cam:
            return cam(input_tensor=x, targets=[ClassifierOutputTarget(t) for t in targets])
    finally:
        base_cam.scale_cam_image = scale


@pytest.fixture(scope="module")
def resnet_explainer(resnet18):
    return igcam.from_torch(resnet18, layer=resnet18.layer4[-1], backend="cpu")


@pytest.fixture(scope="module")
def resnet64(resnet18):
    return copy.deepcopy(resnet18).double()


def test_from_torch_takes_the_submodule_as_pytorch_grad_cam_does(resnet_explainer, resnet18):
    assert resnet_explainer.layer == "/layer4/layer4.1/relu_1/Relu_output_0"
    assert resnet_explainer.input_size == (224, 224)
    assert resnet_explainer.num_classes == 1000
    # BatchNorm folded into the convolutions (the fast export) unless a convolution is the layer.
    assert not any(layer.op == "BatchNormalization" for layer in resnet_explainer.layers())
    # A module inside a block, a whole stage, and several layers: each its last node's output.
    inner = igcam.from_torch(resnet18, layer=resnet18.layer4[-1].conv2, backend="cpu")
    assert inner.layer == "/layer4/layer4.1/conv2/Conv_output_0"
    # BatchNormalization is kept apart (not folded into conv2), so this is conv2's own output.
    assert [layer.op for layer in inner.layers() if layer.name == inner.layer] == ["Conv"]
    assert any(layer.op == "BatchNormalization" for layer in inner.layers())
    both = igcam.from_torch(resnet18, layer=[resnet18.layer3, resnet18.layer4], backend="cpu")
    assert both.layer == "/layer3/layer3.1/relu_1/Relu_output_0,/layer4/layer4.1/relu_1/Relu_output_0"
    with pytest.raises(igcam.InputError) as raised:
        igcam.from_torch(resnet18, layer=torch.nn.ReLU(), backend="cpu")
    assert str(raised.value) == ("`layer` is not a submodule of `module`: pass e.g. model.layer4[-1], "
                                 "or an ONNX tensor name")


@pytest.mark.parametrize("method", sorted(PEERS))
def test_resnet18_matches_pytorch_grad_cam(resnet_explainer, resnet64, photos, method):
    x = photos[:2]
    targets = [[281, 285], [0, 409]]
    maps = resnet_explainer.explain(x, targets=targets, methods=method)
    assert [(m.image, m.target) for m in maps] == [(0, 281), (0, 285), (1, 0), (1, 409)]
    for m in maps:
        assert m.cam.shape == (7, 7) and m.method == method
        want = grad_cam_raw(resnet64, resnet64.layer4[-1], torch.from_numpy(x[m.image:m.image + 1]).double(),
                            [m.target], PEERS[method])[0]
        assert rel_l2(m.cam, want) <= TOLERANCE, (method, m.target, rel_l2(m.cam, want))


def test_a_convolution_inside_a_block_matches_pytorch_grad_cam(resnet18, resnet64, photos):
    """pytorch-grad-cam hooks conv2's output, before its BatchNorm: from_torch keeps them apart."""
    ex = igcam.from_torch(resnet18, layer=resnet18.layer4[-1].conv2, backend="cpu")
    x = photos[4:5]
    (m,) = ex.explain(x, targets=[657], methods="gradcam")
    want = grad_cam_raw(resnet64, resnet64.layer4[-1].conv2, torch.from_numpy(x).double(), [657], GradCAM)[0]
    assert rel_l2(m.cam, want) <= TOLERANCE, rel_l2(m.cam, want)


def test_from_torch_exports_a_double_module_from_a_float_copy(resnet_explainer, resnet64, photos):
    ex = igcam.from_torch(resnet64, layer=resnet64.layer4[-1], backend="cpu")
    assert ex.layer == resnet_explainer.layer
    (a,) = ex.explain(photos[0], targets=[285], methods="gradcam")
    (b,) = resnet_explainer.explain(photos[0], targets=[285], methods="gradcam")
    assert rel_l2(a.cam, b.cam) <= 1e-6
    assert next(resnet64.parameters()).dtype == torch.float64, "the module itself is left as it was"


def test_a_torchvision_export_file_matches_pytorch_grad_cam(tmp_path, photos):
    import torchvision

    torch.manual_seed(1)
    model = torchvision.models.mobilenet_v2(weights=None)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
            m.reset_running_stats()
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(photos))
    model.eval()
    path = tmp_path / "mobilenet_v2.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, 224, 224),), str(path), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    ex = igcam.Explainer(str(path), backend="cpu")
    # The default layer: the last block's output, before the global pooling (features[-1]),
    # which from_torch finds from the submodule (scopes of nested Sequentials).
    assert ex.layer == ex.default_layer
    assert igcam.from_torch(model, layer=model.features[-1], backend="cpu").layer == ex.layer
    model64 = copy.deepcopy(model).double()
    x = photos[2:3]
    maps = ex.explain(x, targets="top2", methods=["gradcam", "gradcampp", "xgradcam", "layercam"])
    assert len(maps) == 8
    for m in maps:
        want = grad_cam_raw(model64, model64.features[-1], torch.from_numpy(x).double(), [m.target],
                            PEERS[m.method])[0]
        assert rel_l2(m.cam, want) <= TOLERANCE, (m.method, m.target, rel_l2(m.cam, want))


def test_resnet18_matches_captum_layer_grad_cam(resnet_explainer, resnet64, photos):
    from captum.attr import LayerGradCam

    x = photos[3:4]
    (m,) = resnet_explainer.explain(x, targets=[652], methods="gradcam")
    want = LayerGradCam(resnet64, resnet64.layer4[-1]).attribute(
        torch.from_numpy(x).double(), target=652, relu_attributions=True)
    assert rel_l2(m.cam, want[0, 0].detach().numpy()) <= TOLERANCE


def test_resnet18_igcam_matches_captum_along_the_path(resnet_explainer, resnet64, photos):
    """IG-CAM (the paper's left Riemann sum, m = 16): Captum's LayerGradCam with ReLU at each
    point of the straight path from the black baseline, summed."""
    from captum.attr import LayerGradCam

    x = photos[1:2]
    black = np.float64(((np.zeros(3) - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225])).reshape(1, 3, 1, 1)
    alphas = np.arange(16).reshape(-1, 1, 1, 1) / 16
    path = torch.from_numpy(black + alphas * (x.astype(np.float64) - black))
    (m,) = resnet_explainer.explain(x, targets=[1], methods="igcam", steps=16)
    assert (m.steps, m.quadrature) == (16, "riemann_left")
    per_point = LayerGradCam(resnet64, resnet64.layer4[-1]).attribute(path, target=1, relu_attributions=True)
    want = per_point.sum(0)[0].detach().numpy()
    assert rel_l2(m.cam, want) <= TOLERANCE, rel_l2(m.cam, want)


@pytest.mark.parametrize("quadrature", ["riemann_left", "gausslegendre"])
def test_resnet18_pixel_ig_is_as_close_to_captum_float64_as_its_float32(resnet_explainer, resnet18, resnet64,
                                                                          photos, quadrature):
    """Pixel IG in float32 cannot come within 1e-4 of a float64 reference on a max-pooling net:
    Captum's own float32 attribution is 2e-3 from its float64 one here (max-pool near-ties
    next to the black baseline break with the rounding). igcam must be within twice that."""
    from captum.attr import IntegratedGradients

    x = photos[0:1]
    black = ((np.zeros(3, np.float32) - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225])
    baseline = np.broadcast_to(black.reshape(1, 3, 1, 1), x.shape).astype(np.float32)
    (m,) = resnet_explainer.explain(x, targets=[285], methods="ig", steps=32, quadrature=quadrature)
    assert m.cam.shape == (224, 224) and m.steps == 32 and m.quadrature == quadrature

    def captum(model, dtype):
        attribution, delta = IntegratedGradients(model).attribute(
            torch.from_numpy(x).to(dtype), baselines=torch.from_numpy(baseline).to(dtype), target=285,
            n_steps=32, method=quadrature, internal_batch_size=8, return_convergence_delta=True)
        return attribution[0].sum(0).detach().double().numpy(), float(delta)

    want, delta = captum(resnet64, torch.float64)
    captum32, _ = captum(resnet18, torch.float32)
    error, captum_error = rel_l2(m.cam, want), rel_l2(captum32, want)
    assert error <= min(2 * captum_error, 5e-3), (error, captum_error)
    assert m.convergence_delta == pytest.approx(delta, abs=1e-2 * float(np.abs(want).sum()))
