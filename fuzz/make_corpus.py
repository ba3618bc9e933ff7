#!/usr/bin/env python3
"""Writes the hostile seed corpus under fuzz/corpus/: tiny crafted models, images and VOC
annotations that once aborted igcam, ate gigabytes or were explained silently.

Each file is a seed for the cargo-fuzz targets (fuzz/fuzz_targets/) and a case for
tests/hostile.rs, which runs every file through the CLI under a 2 GB address-space limit and
asserts exit 0, or exit 2 with one line, and no signal. Needs `onnx`, `numpy` and `Pillow`.

    python3 fuzz/make_corpus.py
"""

import io
import json
import os
import struct
import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def save(kind, name, data):
    path = os.path.join(ROOT, kind, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def model(nodes, inputs, outputs, inits=(), opset=17, name="m"):
    g = helper.make_graph(nodes, name, inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m.SerializeToString()


def image_input(shape, name="x"):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def logits(n="y", classes=10):
    return helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, classes])


def const(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def head(x, classes=10, channels=4):
    """GlobalAveragePool -> Flatten -> Gemm: a classifier head on tensor `x`."""
    w = const("w", np.ones((classes, channels), np.float32))
    return [
        helper.make_node("GlobalAveragePool", [x], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"]),
        helper.make_node("Gemm", ["flat", "w"], ["y"], transB=1),
    ], [w]


def conv_net(shape, conv_attrs=None, classes=10):
    c = shape[1]
    wc = const("wc", np.ones((4, min(c, 3), 3, 3), np.float32) * 0.01)
    nodes = [helper.make_node("Conv", ["x", "wc"], ["c"], **(conv_attrs or {"pads": [1, 1, 1, 1]}))]
    nodes.append(helper.make_node("Relu", ["c"], ["r"]))
    h, inits = head("r", classes)
    return model(nodes + h, [image_input(shape)], [logits(classes=classes)], [wc] + inits)


def models():
    # 1. Declared inputs no CNN has: 100000^2 pixels, 1e9 channels, dims overflowing usize.
    save("onnx", "input_100000sq.onnx", conv_net([1, 3, 100000, 100000]))
    save("onnx", "input_1e9_channels.onnx", conv_net([1, 1_000_000_000, 8, 8]))
    save("onnx", "input_8000sq.onnx", conv_net([1, 3, 8000, 8000]))
    save("onnx", "input_dims_overflow.onnx", conv_net([1, 3, 2**62, 2**62]))
    # 2. Pads of 100000 on Conv, Pad and AveragePool.
    save("onnx", "conv_pads_100000.onnx", conv_net([1, 3, 8, 8], {"pads": [100000] * 4}))
    pads = const("pads", np.array([0, 0, 100000, 100000, 0, 0, 100000, 100000], np.int64))
    wc = const("wc", np.ones((4, 3, 3, 3), np.float32))
    h, inits = head("c")
    save("onnx", "pad_100000.onnx", model(
        [helper.make_node("Pad", ["x", "pads"], ["p"]), helper.make_node("Conv", ["p", "wc"], ["c"])] + h,
        [image_input([1, 3, 8, 8])], [logits()], [pads, wc] + inits))
    h, inits = head("a", channels=3)
    save("onnx", "avgpool_pads_100000.onnx", model(
        [helper.make_node("AveragePool", ["x"], ["a"], kernel_shape=[3, 3], pads=[100000] * 4)] + h,
        [image_input([1, 3, 8, 8])], [logits()], inits))
    # A pooling window of 1000x1000 for every one of 3x1025x1025 outputs: no memory to speak
    # of, but hours of CPU time.
    h, inits = head("p", channels=3)
    save("onnx", "pool_window_huge.onnx", model(
        [helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[1000, 1000], pads=[500] * 4)] + h,
        [image_input([1, 3, 1024, 1024])], [logits()], inits))
    # 3. A huge ConstantOfShape, Expand and Tile.
    shape = const("shape", np.array([1, 4, 100000, 100000], np.int64))
    wc = const("wc", np.ones((4, 3, 3, 3), np.float32))
    h, inits = head("s")
    save("onnx", "constant_of_shape_huge.onnx", model(
        [helper.make_node("Conv", ["x", "wc"], ["c"]),
         helper.make_node("ConstantOfShape", ["shape"], ["k"],
                          value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])),
         helper.make_node("Add", ["c", "k"], ["s"])] + h,
        [image_input([1, 3, 8, 8])], [logits()], [shape, wc] + inits))
    h, inits = head("e")
    save("onnx", "expand_huge.onnx", model(
        [helper.make_node("Conv", ["x", "wc"], ["c"]),
         helper.make_node("Expand", ["c", "shape"], ["e"])] + h,
        [image_input([1, 3, 8, 8])], [logits()], [shape, wc] + inits))
    # A [100000, 1, 1, 1] tensor broadcast against one image: its own first dim must not
    # raise its allowance (the limit follows the images of the run).
    kshape = const("kshape", np.array([100000, 1, 1, 1], np.int64))
    h, inits = head("c")
    save("onnx", "broadcast_first_dim.onnx", model(
        [helper.make_node("ConstantOfShape", ["kshape"], ["k"],
                          value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])),
         helper.make_node("Add", ["x", "k"], ["s"]),
         helper.make_node("Conv", ["s", "wc"], ["c"])] + h,
        [image_input([1, 3, 224, 224])], [logits()], [kshape, wc] + inits))
    # A Split that claims 10^9 outputs and has two (the parts list would be 8 GB).
    h, inits = head("c", channels=4)
    save("onnx", "split_num_outputs_huge.onnx", model(
        [helper.make_node("Conv", ["x", "wc"], ["c0"]),
         helper.make_node("Split", ["c0"], ["a", "b"], axis=1, num_outputs=1_000_000_000),
         helper.make_node("Concat", ["a", "b"], ["c"], axis=1)] + h,
        [image_input([1, 3, 8, 8])], [logits()], [wc] + inits, opset=18))
    # A MatMul whose second operand brings batch axes of its own: [1, 64, 4] x [16384, 1, 4, 1024]
    # is [16384, 1, 64, 1024] (4 GB), not the [1, 64, 1024] the first operand suggests.
    wc1 = const("wc1", np.ones((4, 3, 1, 1), np.float32))
    bshape = const("bshape", np.array([16384, 1, 4, 1024], np.int64))
    flat = const("flat", np.array([1, 4, 64], np.int64))
    save("onnx", "matmul_batch_from_weight.onnx", model(
        [helper.make_node("Conv", ["x", "wc1"], ["c"]),
         helper.make_node("Reshape", ["c", "flat"], ["r"]),
         helper.make_node("Transpose", ["r"], ["a"], perm=[0, 2, 1]),
         helper.make_node("ConstantOfShape", ["bshape"], ["b"],
                          value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.5])),
         helper.make_node("MatMul", ["a", "b"], ["m"]),
         helper.make_node("ReduceMean", ["m"], ["y"], axes=[0, 1, 2], keepdims=0)],
        [image_input([1, 3, 8, 8])], [logits(classes=1024)], [wc1, bshape, flat], opset=13))
    # One 222x222 map listed 1000 times in a Concat: a 4 KB file asking for 790 MB (and 10^6
    # times would ask for 790 GB).
    h, inits = head("cat", channels=4)
    cat = helper.make_node("Concat", ["c0"] * 1000, ["cat"], axis=1)
    save("onnx", "concat_repeated.onnx", model(
        [helper.make_node("Conv", ["x", "wc"], ["c0"]), cat] + h,
        [image_input([1, 3, 224, 224])], [logits()], [wc] + inits))
    # Twelve padded copies of one map, each within the per-tensor limit, all alive before any
    # is read: 3 GB held at once from a 2.5 KB file.
    pad_nodes, pad_inits = [helper.make_node("Conv", ["x", "wc"], ["c"], pads=[1, 1, 1, 1])], [wc]
    for i in range(12):
        pad_inits.append(const(f"p{i}", np.array([0, 0, 1888 + i, 1888, 0, 0, 1888, 1888], np.int64)))
        pad_nodes.append(helper.make_node("Pad", ["c", f"p{i}"], [f"t{i}"]))
    pad_nodes += [helper.make_node("GlobalAveragePool", [f"t{i}"], [f"g{i}"]) for i in range(12)]
    for i in range(1, 12):
        pad_nodes.append(helper.make_node("Add", ["g0" if i == 1 else f"a{i - 1}", f"g{i}"],
                                          ["gap" if i == 11 else f"a{i}"]))
    h, inits = head("unused")
    save("onnx", "many_live_tensors.onnx", model(
        pad_nodes + h[1:], [image_input([1, 3, 224, 224])], [logits()], pad_inits + inits))
    # A valid model whose one padded map (64 M values per image) sits just under the per-tensor
    # limit: at the default 10 path points per chunk that map alone would be 2.5 GB. Kept apart
    # from the corpus the CLI tests explain under 2 GiB: even in chunks of one, the explain
    # path holds several copies of that map (the stem's two images, the path interpolation).
    big_pads = const("big_pads", np.array([0, 0, 1888, 1888, 0, 0, 1888, 1888], np.int64))
    h, inits = head("big")
    save("onnx_large", "big_activation.onnx", model(
        [helper.make_node("Conv", ["x", "wc"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Pad", ["c", "big_pads"], ["big"])] + h,
        [image_input([1, 3, 224, 224])], [logits()], [wc, big_pads] + inits))
    # 4. 1e8 and 2e6 classes from a weight made by ConstantOfShape (600-byte models).
    for tag, classes in (("1e8", 100_000_000), ("2e6", 2_000_000)):
        wshape = const("wshape", np.array([4, classes], np.int64))
        wc = const("wc", np.ones((4, 3, 3, 3), np.float32))
        save("onnx", f"classes_{tag}.onnx", model(
            [helper.make_node("Conv", ["x", "wc"], ["c"]),
             helper.make_node("GlobalAveragePool", ["c"], ["gap"]),
             helper.make_node("Flatten", ["gap"], ["flat"]),
             helper.make_node("ConstantOfShape", ["wshape"], ["w"],
                              value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.5])),
             helper.make_node("MatMul", ["flat", "w"], ["y"])],
            [image_input([1, 3, 8, 8])], [logits(classes=classes)], [wshape, wc]))
    # 5. An initialiser whose dims promise 1e9 values that the file does not hold.
    t = TensorProto(name="wc", data_type=TensorProto.FLOAT, dims=[1_000_000_000, 3, 3, 3])
    h, inits = head("c")
    save("onnx", "initializer_dims_lie.onnx", model(
        [helper.make_node("Conv", ["x", "wc"], ["c"])] + h, [image_input([1, 3, 8, 8])], [logits()], [t] + inits))
    # 6. Faults in the model that are not igcam's: duplicate outputs, a target that does not
    #    depend on the layer, float16 weights.
    wc = const("wc", np.ones((4, 3, 3, 3), np.float32))
    h, inits = head("c")
    save("onnx", "duplicate_output_names.onnx", model(
        [helper.make_node("Conv", ["x", "wc"], ["c"]), helper.make_node("Relu", ["x"], ["c"])] + h,
        [image_input([1, 3, 8, 8])], [logits()], [wc] + inits))
    bias = const("b", np.arange(10, dtype=np.float32).reshape(1, 10))
    # A side branch (`side`) that the logits do not read: `--layer side` cannot be explained.
    h, inits = head("c")
    save("onnx", "side_branch.onnx", model(
        [helper.make_node("Conv", ["x", "wc"], ["c"]), helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("Conv", ["r", "ws"], ["side"])] + h,
        [image_input([1, 3, 8, 8])], [logits()], [wc, const("ws", np.ones((4, 4, 1, 1), np.float32))] + inits))
    save("onnx", "output_ignores_input.onnx", model(
        [helper.make_node("Conv", ["x", "wc"], ["c"]), helper.make_node("Identity", ["b"], ["y"])],
        [image_input([1, 3, 8, 8])], [logits()], [wc, bias]))
    w16 = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float16), "wc")
    h, inits = head("c")
    save("onnx", "float16_weights.onnx", model(
        [helper.make_node("Conv", ["x", "wc"], ["c"])] + h, [image_input([1, 3, 8, 8])], [logits()], [w16] + inits))
    # A shape mismatch only Burn notices (its panic message is several lines long).
    h, inits = head("s")
    save("onnx", "add_shape_mismatch.onnx", model(
        [helper.make_node("Conv", ["x", "wc"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Add", ["c", "x"], ["s"])] + h,
        [image_input([1, 3, 8, 8])], [logits()], [wc] + inits))
    # 7. Not ONNX at all, and an ONNX file cut in half.
    good = conv_net([1, 3, 8, 8])
    save("onnx", "truncated.onnx", good[: len(good) // 2])
    save("onnx", "text.onnx", b"this is not a model\n")
    save("onnx", "tiny_ok.onnx", good)


def png(w, h, color=(200, 30, 30)):
    buf = io.BytesIO()
    Image.new("RGB", (w, h), color).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def png_header_only(w, h):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def images():
    # A 1x16384 strip: resizing its short side to 256 makes a 4-gigapixel image.
    save("image", "strip_1x16384.png", png(1, 16384))
    save("image", "strip_16384x1.png", png(16384, 1))
    save("image", "header_100000sq.png", png_header_only(100000, 100000))
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8))
    buf = io.BytesIO()
    photo.save(buf, format="JPEG", quality=90)
    jpeg = buf.getvalue()
    save("image", "ok.jpg", jpeg)
    for frac in (0.3, 0.5, 0.9):
        save("image", f"truncated_{int(frac * 100)}.jpg", jpeg[: int(len(jpeg) * frac)])
    flipped = bytearray(jpeg)
    flipped[len(flipped) // 2] ^= 0xFF
    save("image", "bitflip.jpg", bytes(flipped))
    buf = io.BytesIO()
    photo.save(buf, format="PNG")
    good = buf.getvalue()
    save("image", "truncated.png", good[: len(good) // 2])
    save("image", "empty.png", b"")
    save("image", "text.jpg", b"hello\n")


def annotations():
    obj = "<object><name>cat</name><difficult>0</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>50</xmax><ymax>40</ymax></bndbox></object>"
    ok = f"<annotation><filename>x.png</filename><size><width>64</width><height>48</height><depth>3</depth></size>{obj}</annotation>"
    save("voc", "ok.xml", ok.encode())
    save("voc", "nested_15000.xml", (b"<a>" * 15000) + (b"</a>" * 15000))
    save("voc", "empty_box.xml", ok.replace("<xmax>50</xmax>", "<xmax>1</xmax>").replace("<ymax>40</ymax>", "<ymax>1</ymax>").encode())
    save("voc", "huge_size.xml", ok.replace("<width>64</width>", "<width>99999999999999999999</width>").encode())
    save("voc", "not_xml.xml", b"<annotation><object>")
    save("voc", "entities.xml", b'<!DOCTYPE a [<!ENTITY e "ee"><!ENTITY f "&e;&e;&e;&e;">]><annotation>&f;</annotation>')


def datasets():
    """Seeds of `dataset_text`: ImageNet's and a folder's CSVs, and COCO instances files with
    the masks eval decodes (a bad polygon, run lengths that wrap, a far-away outline)."""
    save("dataset", "loc_solution.csv",
         b"ImageId,PredictionString\nILSVRC2012_val_00000001,n02123045 60 20 400 300 \n"
         b"ILSVRC2012_val_00000003,n07920052 1 2 3\n")
    save("dataset", "labels.csv", b"image,label\na.jpg,cat\nb.jpg,\n,dog\n")
    image = {"id": 1, "file_name": "a.jpg", "width": 8, "height": 6}
    cats = [{"id": 1, "name": "cat"}]

    def coco(name, segmentation, bbox=(1.0, 1.0, 4.0, 3.0)):
        ann = {"id": 1, "image_id": 1, "category_id": 1, "bbox": list(bbox), "segmentation": segmentation}
        save("dataset", name, json.dumps({"images": [image], "annotations": [ann], "categories": cats}).encode())

    coco("coco_polygon.json", [[1.0, 1.0, 6.5, 1.2, 4.0, 5.0]])
    coco("coco_plain_rle.json", {"counts": [7, 3, 38], "size": [6, 8]})
    # pycocotools' encoding of rows 1-3, columns 2-5 of a 6x8 mask.
    coco("coco_compressed_rle.json", {"counts": "=3300000;", "size": [6, 8]})
    coco("coco_compressed_rle_wrong_total.json", {"counts": "61X13", "size": [6, 8]})
    coco("coco_odd_polygon.json", [[1.0, 1.0, 6.5]])
    coco("coco_wrapping_counts.json", {"counts": [18446744073709551615, 49], "size": [6, 8]})
    coco("coco_far_outline.json", [[0.0, 0.0, 1e12, 0.0, 0.0, 5.0]])
    coco("coco_bad_bbox.json", [[1.0, 1.0, 6.5, 1.2, 4.0, 5.0]], bbox=("a", 1))


if __name__ == "__main__":
    models()
    images()
    annotations()
    datasets()
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(ROOT) for f in fs)
    print(f"wrote {ROOT} ({total} bytes)")
