"""The binding itself: the CLI's maps for the same request, every kind of input, results,
progress and stopping, errors with their one-line messages, threads and memory."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from PIL import Image

import igcam
from conftest import IMAGES, ROOT, rel_l2

CAT = str(IMAGES / "chelsea.png")


def test_maps_equal_the_clis_json(cli, lite0, tmp_path):
    out = tmp_path / "all.json"
    subprocess.run([cli, "explain", CAT, "--method", "igcam,gradcam,ig,fullgrad", "--target", "top2",
                    "--steps", "16", "--backend", "cpu", "--quiet", "--out", str(tmp_path), "--json", str(out)],
                   check=True, timeout=600)
    records = json.loads(out.read_text())
    maps = lite0.explain(CAT, targets="top2", methods=["igcam", "gradcam", "ig", "fullgrad"], steps=16)
    assert [(m.method, m.target) for m in maps] == [(r["method"], r["target"]["index"]) for r in records]
    for m, r in zip(maps, records):
        want = np.array(r["cam"]["values"], np.float32).reshape(r["cam"]["height"], r["cam"]["width"])
        assert m.cam.shape == want.shape
        assert rel_l2(m.cam, want) <= 1e-6, (m.method, rel_l2(m.cam, want))
        assert (m.layer, m.steps, m.quadrature) == (r["layer"], r["steps"], r.get("quadrature"))
        assert m.top5[0].index == r["top5"][0]["index"] and m.top5[0].label == r["top5"][0]["label"]
        assert m.crop == (r["crop"]["x0"], r["crop"]["y0"], r["crop"]["x1"], r["crop"]["y1"])


def test_every_input_kind_gives_the_same_map(lite0, photos):
    rgb = np.asarray(Image.open(CAT).convert("RGB"))
    by_path = lite0.explain(CAT, methods="gradcam")[0]
    for image in [Image.open(CAT), rgb, open(CAT, "rb").read(), [rgb]]:
        (m,) = lite0.explain(image, methods="gradcam")
        assert np.array_equal(m.cam, by_path.cam) and m.target == by_path.target == 285
    # An already normalised input skips the photo pipeline: the same map for the same floats.
    x = photos[0]
    a = lite0.explain(x, methods="gradcam", targets=285)[0]
    b = lite0.explain(x[None].astype(np.float64), methods="gradcam", targets=285)[0]
    assert np.array_equal(a.cam, b.cam)
    # torchvision's Resize(256) + CenterCrop(224) + Normalize gives the floats igcam makes of the file.
    assert rel_l2(a.cam, by_path.cam) < 1e-5
    assert a.photo.shape == (224, 224, 3) and a.photo.dtype == np.uint8


def test_results_carry_what_a_notebook_needs(lite0):
    maps = lite0.explain([CAT, str(IMAGES / "coffee.png")], targets=["top1", 967],
                         methods=["igcam", "eigencam"], steps=8)
    assert [(m.image, m.method, m.target) for m in maps] == [
        (0, "igcam", 285), (0, "eigencam", 285), (1, "igcam", 967), (1, "eigencam", 967)]
    m = maps[0]
    assert (m.target, m.target_label, m.layer) == (285, "Egyptian cat", lite0.default_layer)
    assert m.cam.dtype == np.float32 and m.cam.shape == (7, 7)
    assert m.upsampled.shape == (224, 224)
    assert np.isclose(m.upsampled.max(), m.cam.max(), rtol=0.2)
    assert [p.index for p in m.top5][:2] == [285, 281] and 0 < m.top5[0].prob < 1
    overlay = m.overlay(alpha=0.7, colormap="viridis")
    assert overlay.size == (224, 224) and overlay.mode == "RGB"
    assert m._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
    assert m.ms > 0 and "Egyptian cat" in repr(m)
    layers = lite0.layers()
    assert len(layers) == 108 and lite0.default_layer in [layer.name for layer in layers]
    assert layers[0].shape[0] == 1 and isinstance(layers[0].op, str)
    assert "igcam" in igcam.methods() and "fullgrad" in igcam.methods() and len(igcam.methods()) == 18


def test_options_reach_the_library(lite0):
    (plain,) = lite0.explain(CAT, methods="gradcam", targets=285)
    (integrated,) = lite0.explain(CAT, methods="gradcam", targets=285, integrate=True, steps=4)
    assert integrated.method == "integrated-gradcam" and integrated.steps == 4
    (smooth,) = lite0.explain(CAT, methods="gradcam", targets=285, aug_smooth=True)
    assert smooth.method == "gradcam+aug-smooth" and smooth.cam.shape == (224, 224)
    a, b, c = (lite0.explain(CAT, methods="gradcam", targets=285, noise_tunnel="vargrad", nt_samples=2,
                             nt_stdev=0.1, seed=s)[0] for s in (1, 1, 2))
    assert a.method == "gradcam+vargrad" and np.array_equal(a.cam, b.cam)
    assert not np.array_equal(a.cam, c.cam), "the seed reaches the noise"
    layers = [lite0.layers()[-3].name, lite0.default_layer]
    (both,) = lite0.explain(CAT, methods="gradcam", targets=285, layer=layers)
    assert both.layer == ",".join(layers) and both.cam.shape == (224, 224)
    assert not np.array_equal(plain.cam, lite0.explain(CAT, methods="gradcam", targets=285, eigen_smooth=True)[0].cam)


def test_progress_is_reported_and_can_stop_the_request(lite0):
    seen = []
    lite0.explain([CAT, CAT], methods="igcam", steps=20, batch=5, progress=lambda d, t: seen.append((d, t)))
    # Per image: four chunks of five path points, counted on across the images.
    assert seen == [(5, 20), (10, 20), (15, 20), (20, 20), (25, 40), (30, 40), (35, 40), (40, 40)]
    seen.clear()
    lite0.explain(CAT, methods="igcam", steps=20, batch=10, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(10, 20), (20, 20)], "the batch reaches the library"

    calls = []

    def stop(done, total):
        calls.append(done)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        lite0.explain(CAT, methods="igcam", steps=40, batch=5, progress=stop)
    assert len(calls) == 1  # stopped after the first chunk
    assert lite0.explain(CAT, methods="gradcam")[0].target == 285  # and still usable

    def reenter(done, total):
        lite0.explain(CAT, methods="gradcam")

    with pytest.raises(igcam.InputError) as raised:
        lite0.explain(CAT, methods="igcam", steps=4, progress=reenter)
    assert str(raised.value) == ("the explainer is running this thread's request: call it again after `explain` "
                                 "returns, not from its progress callback")


def test_progress_true_draws_a_tqdm_bar(lite0, capsys):
    lite0.explain(CAT, methods="igcam", steps=10, batch=5, progress=True)
    err = capsys.readouterr().err
    assert "10/10" in err and "step" in err  # ten path points


def test_ctrl_c_stops_a_long_request_between_chunks(tmp_path):
    # Python's own SIGINT handler, which a child started from a background job lacks (bash
    # leaves SIGINT ignored there, and Python then installs none).
    script = textwrap.dedent(f"""
        import signal, sys, igcam
        signal.signal(signal.SIGINT, signal.default_int_handler)
        ex = igcam.Explainer(backend="cpu")
        print("ready", flush=True)
        try:
            ex.explain({CAT!r}, methods="ig", steps=5000, force=True, batch=2)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(3)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(2.0)
        child.send_signal(signal.SIGINT)
        start = time.monotonic()
        out, _ = child.communicate(timeout=60)
        assert child.returncode == 3 and out.strip() == "interrupted"
        assert time.monotonic() - start < 10
    finally:
        child.kill()


@pytest.mark.parametrize("call, kind, message", [
    (lambda ex: ex.explain(CAT, methods="nope"), igcam.InputError,
     "invalid option: unknown method `nope` (one of: igcam, gradcam, gradcampp, xgradcam, layercam, ig, hirescam, "
     "gradcam-elementwise, eigencam, eigengradcam, ablationcam, scorecam, kpcacam, fem, finercam, shapleycam, fullgrad, randomcam)"),
    (lambda ex: ex.explain(CAT, steps=0), igcam.InputError,
     "invalid option: `steps` must be at least 1 (the paper uses 50)"),
    (lambda ex: ex.explain(CAT, steps=20000), igcam.InputError,
     "invalid option: `steps` 20000 is more than 10000 (hours of work); pass force=True to run it anyway"),
    (lambda ex: ex.explain(CAT, targets=1000), igcam.InputError,
     "target class 1000 is out of range: the model has 1000 classes (valid: 0 to 999)"),
    (lambda ex: ex.explain(CAT, layer="nope"), igcam.InputError,
     "unknown layer `nope`: no node outputs a tensor with that name; list candidates with `Explainer.layers()`"),
    (lambda ex: ex.explain(np.zeros((3, 100, 100), np.float32)), igcam.InputError,
     "invalid option: the input holds 30000 values but the model takes 3x224x224 = 150528"),
    (lambda ex: ex.explain(np.zeros((5, 5, 2), np.uint8)), igcam.InputError,
     "an image array must be HxWx3 uint8 (RGB; HxW grey and HxWx4 RGBA are converted) or 3xHxW float32 "
     "(already normalised), or a batch of either (NxHxWx3, Nx3xHxW); got shape (5, 5, 2) of uint8"),
    (lambda ex: ex.explain(b"not an image"), igcam.InputError,
     "cannot decode image: not a PNG or JPEG file (supported: PNG, JPEG)"),
    (lambda ex: ex.explain(CAT, quadrature="simpson"), igcam.InputError,
     "invalid option: unknown quadrature `simpson` (one of: riemann_left, riemann_right, riemann_middle, "
     "riemann_trapezoid, gausslegendre)"),
    (lambda ex: ex.explain(CAT, noise_tunnel="smoothgrad", nt_samples=0), igcam.InputError,
     "invalid option: `nt_samples` must be at least 1"),
    (lambda ex: ex.explain("/nonexistent.png"), igcam.InputError,
     "cannot read the image file `/nonexistent.png`: No such file or directory"),
    (lambda ex: ex.explain([]), igcam.InputError, "no image to explain: `images` is empty"),
    (lambda ex: ex.explain(np.zeros((0, 224, 224, 3), np.uint8)), igcam.InputError,
     "no image to explain: the batch is empty"),
    (lambda ex: ex.explain(np.zeros((0, 5, 3), np.uint8)), igcam.InputError, "the image is empty (shape [0, 5, 3])"),
    (lambda ex: ex.explain(CAT, steps=-1), igcam.InputError, "`steps` must be a whole number, 0 or more, not -1"),
    (lambda ex: ex.explain(CAT, seed=-5), igcam.InputError, "`seed` must be a whole number, 0 or more, not -5"),
    (lambda ex: igcam.Explainer(threads=-1), igcam.InputError, "`threads` must be a whole number, 0 or more, not -1"),
    (lambda ex: ex.explain(CAT, targets=[]), igcam.InputError, "no target to explain: `targets` is empty"),
    (lambda ex: ex.explain(CAT, targets=2.5), igcam.InputError,
     "a target must be a class index, a label, `top1` or `topK`, not 2.5"),
    (lambda ex: igcam.Explainer(b"garbage"), igcam.ModelError,
     "cannot parse ONNX model: Incorrect tag (is this an .onnx file exported with opset 9..=24?)"),
    (lambda ex: igcam.Explainer(backend="tpu"), igcam.InputError, "unknown backend `tpu` (auto, cpu, wgpu)"),
    (lambda ex: igcam.Explainer(preprocess="zscore"), igcam.InputError,
     "invalid option: unknown preprocessing `zscore` (imagenet, raw01, caffe)"),
    (lambda ex: igcam.Explainer(layer="nope"), igcam.InputError,
     "unknown layer `nope`: no node outputs a tensor with that name; list candidates with `Explainer.layers()`"),
])
def test_bad_input_raises_one_clear_line(lite0, call, kind, message):
    with pytest.raises(kind) as raised:
        call(lite0)
    assert str(raised.value) == message
    assert isinstance(raised.value, igcam.Error)
    assert isinstance(raised.value, ValueError) == (kind is igcam.InputError)


def test_two_threads_share_one_explainer(lite0):
    paths = [CAT, str(IMAGES / "coffee.png")]
    serial = [lite0.explain(p, methods=["igcam", "gradcam"], steps=8) for p in paths]
    results = {}

    def work(i):
        results[i] = [lite0.explain(paths[i % 2], methods=["igcam", "gradcam"], steps=8) for _ in range(3)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(2):
        assert len(results[i]) == 3
        for run in results[i]:
            assert len(run) == len(serial[i % 2]) == 2
            assert all(np.array_equal(a.cam, b.cam) for a, b in zip(run, serial[i % 2]))


def test_a_second_call_waits_while_the_first_reports_progress(lite0):
    """Thread A's progress callback runs (holding the GIL, the explainer still locked by A)
    while thread B asks for the explainer: B waits with the GIL released, so A's reports go
    on, and both finish."""
    started = threading.Event()
    finished = []

    def slow(done, total):
        started.set()
        time.sleep(0.05)

    def first():
        finished.append(len(lite0.explain(CAT, methods="igcam", steps=20, batch=2, progress=slow)))

    def second():
        started.wait(60)
        finished.append(len(lite0.explain(CAT, methods="gradcam")))
        finished.append(len(lite0.evaluate(lite0.explain(CAT, methods="gradcam"))))

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert not any(t.is_alive() for t in threads), "deadlocked"
    assert sorted(finished) == [1, 1, 1]


def test_truncated_jpegs_need_lenient(tmp_path):
    from io import BytesIO

    buffer = BytesIO()
    Image.open(CAT).convert("RGB").save(buffer, "JPEG", quality=90)
    cut = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    with pytest.raises(igcam.InputError) as raised:
        igcam.Explainer(backend="cpu").explain(cut, methods="gradcam")
    assert "pass lenient=True" in str(raised.value) and "\n" not in str(raised.value)
    with pytest.warns(RuntimeWarning, match="image 0 is a truncated JPEG; its missing part is grey"):
        (m,) = igcam.Explainer(backend="cpu", lenient=True).explain(cut, methods="gradcam")
    assert m.cam.shape == (7, 7)


def test_constructor_options_reach_the_library(tmp_path):
    labels = [f"thing {i}" for i in range(1000)]
    path = tmp_path / "labels.txt"
    path.write_text("\n".join(labels))
    for given in [labels, str(path)]:
        ex = igcam.Explainer(backend="cpu", labels=given)
        assert ex.explain(CAT, methods="gradcam")[0].target_label == "thing 285"
    whole = igcam.Explainer(backend="cpu", no_crop=True).explain(CAT, methods="gradcam")[0]
    assert whole.crop == (0, 0, 451, 300)
    cropped = igcam.Explainer(backend="cpu").explain(CAT, methods="gradcam")[0]
    assert cropped.crop == (94, 19, 357, 281)
    small = igcam.Explainer(backend="cpu", max_pixels=1000)
    with pytest.raises(igcam.InputError) as raised:
        small.explain(CAT)
    assert "max_pixels" in str(raised.value) and "\n" not in str(raised.value)
    zero = igcam.Explainer(backend="cpu", baseline="zero")
    (z,) = zero.explain(CAT, methods="ig", steps=4, targets=285)
    (b,) = zero.explain(CAT, methods="ig", steps=4, targets=285, baseline="black")
    (z2,) = zero.explain(CAT, methods="ig", steps=4, targets=285)
    assert not np.array_equal(z.cam, b.cam) and np.array_equal(z.cam, z2.cam), "a call's baseline is its own"
    out = subprocess.run([sys.executable, "-c", "import igcam; print(igcam.Explainer(backend='cpu', threads=1).backend)"],
                         capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "cpu (Burn flex, 1 threads)"


def test_a_model_path_reads_its_external_weights(tmp_path):
    """A model given by its path reads `model.onnx.data` beside it (the new exporter's default);
    given as bytes alone, it says where the weights are."""
    folder = ROOT / "tests" / "fixtures" / "external"
    by_path = igcam.Explainer(model=str(folder / "resnet_tiny.onnx"), backend="cpu")
    inline = igcam.Explainer(model=str(ROOT / "tests" / "fixtures" / "nets" / "resnet_tiny.onnx"), backend="cpu")
    image = str(ROOT / "tests" / "fixtures" / "nets" / "resnet_tiny_input.png")
    (a,) = by_path.explain(image, methods="gradcam", targets=0)
    (b,) = inline.explain(image, methods="gradcam", targets=0)
    assert rel_l2(a.cam, b.cam) < 1e-6
    with pytest.raises(igcam.Error) as raised:
        igcam.Explainer(model=(folder / "resnet_tiny.onnx").read_bytes(), backend="cpu")
    assert "external file `resnet_tiny.onnx.data`, which is not available here" in str(raised.value)


def test_a_segmenter_explains_its_class_regions():
    """The zoo's LR-ASPP: `present` names the classes with a region, largest first; each map
    equals pytorch-grad-cam's with its SemanticSegmentationTarget (the fixture's reference);
    the metrics refuse a segmenter."""
    zoo = ROOT / "tests" / "fixtures" / "zoo"
    ex = igcam.Explainer(model=str(zoo / "lraspp_opset17.onnx"), backend="cpu")
    maps = ex.explain(str(zoo / "input.png"), targets="present", methods="gradcam")
    assert [m.target for m in maps] == [2, 1, 0, 3]
    case = next(c for c in json.loads((zoo / "segmenters.json").read_text())["cases"]
                if c["model"] == "lraspp_opset17.onnx")
    for want in case["targets"]:
        got = next(m for m in maps if m.target == want["class"])
        assert rel_l2(got.cam.ravel(), want["gradcam"]["values"]) < 1e-4
    with pytest.raises(igcam.InputError) as raised:
        ex.evaluate(maps[:1])
    assert "this model is a segmenter" in str(raised.value)
    quadrant = np.zeros((128, 128), np.uint8)
    quadrant[:64, :64] = 255
    custom = case["custom_region"]
    (m,) = ex.explain(str(zoo / "input.png"), targets=custom["class"], methods="gradcam", region=quadrant)
    assert rel_l2(m.cam.ravel(), custom["gradcam"]["values"]) < 1e-4
    with pytest.raises(igcam.InputError) as raised:
        ex.explain(str(zoo / "input.png"), methods="gradcam", region=quadrant[:64])
    assert "the region holds 8192 pixels but the model's output plane is 128x128" in str(raised.value)
    with pytest.raises(igcam.InputError) as raised:
        igcam.Explainer(model=str(zoo / "lraspp_opset17.onnx"), backend="cpu", task="classify")
    assert "is not a model to classify" in str(raised.value)
    with pytest.raises(igcam.InputError) as raised:
        igcam.Explainer(model=str(zoo / "lraspp_opset17.onnx"), backend="cpu", output="logits")
    assert "the model has no output `logits`; its outputs: `out`" in str(raised.value)


def test_a_detector_explains_its_detections():
    """The zoo's YOLOv5 (objectness layout): photos go in as RGB / 255 by default; `all` names
    every detection the reference post-processing keeps, the most confident first; the two
    best maps over the neck layers equal pytorch-grad-cam's (the fixture's reference); `detN`
    and a class pick detections; the thresholds are checked."""
    zoo = ROOT / "tests" / "fixtures" / "zoo"
    ex = igcam.Explainer(model=str(zoo / "yolov5_opset17.onnx"), backend="cpu")
    reference = json.loads((zoo / "detectors.json").read_text())
    family = reference["families"]["yolov5"]
    layers = next(c for c in reference["cases"] if c["model"] == "yolov5_opset17.onnx")["layers"]
    maps = ex.explain(str(zoo / "input.png"), targets="all", methods="gradcam")
    want = family["detections"]
    assert [(m.detection["index"], m.detection["anchor"], m.detection["class"]) for m in maps] == [
        (i, d["anchor"], d["class"]) for i, d in enumerate(want)]
    assert all(m.target == m.detection["class"] and m.prob == m.detection["score"] for m in maps)
    assert maps[0].layer == ",".join(layers)
    assert rel_l2(maps[0].cam.ravel(), family["targets"][0]["gradcam_all_layers"]["values"]) < 1e-4
    for k, target in enumerate(family["targets"]):
        for layer, ref in zip(layers, target["layers"]):
            (m,) = ex.explain(str(zoo / "input.png"), targets=f"det{k}", methods="gradcam", layer=layer)
            assert rel_l2(m.cam.ravel(), ref["gradcam"]["values"]) < 1e-4
    of_class = ex.explain(str(zoo / "input.png"), targets=2, methods="gradcam")
    assert [m.detection["index"] for m in of_class] == [i for i, d in enumerate(want) if d["class"] == 2]
    with pytest.raises(igcam.InputError) as raised:
        ex.explain(str(zoo / "input.png"), targets="det99", methods="gradcam")
    assert f"det99: the image has {len(want)} detection(s)" in str(raised.value)
    with pytest.raises(igcam.InputError) as raised:
        igcam.Explainer(model=str(zoo / "yolov5_opset17.onnx"), backend="cpu", conf=2.0)
    assert str(raised.value) == "invalid option: `conf` 2 is outside 0..=1: give a threshold between 0 and 1"


def test_targets_follow_the_peers_habits(lite0):
    two = [CAT, str(IMAGES / "coffee.png")]
    # One per image, as pytorch-grad-cam's targets and Captum's target take them.
    assert [(m.image, m.target) for m in lite0.explain(two, targets=[281, 967], methods="gradcam")] == [(0, 281), (1, 967)]
    assert [(m.image, m.target) for m in lite0.explain(two, targets=np.array([281, 967]), methods="gradcam")] == [(0, 281), (1, 967)]
    # Several for one image; one list per image; one for all.
    assert [m.target for m in lite0.explain(CAT, targets=[281, 285], methods="gradcam")] == [281, 285]
    assert [(m.image, m.target) for m in lite0.explain(two, targets=[[281, 285], "top1"], methods="gradcam")] == [(0, 281), (0, 285), (1, 967)]
    assert [(m.image, m.target) for m in lite0.explain(two, targets="top1", methods="gradcam")] == [(0, 285), (1, 967)]
    # pytorch-grad-cam's own target objects, and its default.
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    assert [m.target for m in lite0.explain(two, targets=[ClassifierOutputTarget(281), ClassifierOutputTarget(967)],
                                            methods="gradcam")] == [281, 967]
    assert [m.target for m in lite0.explain(two, targets=None, methods="gradcam")] == [285, 967]
    with pytest.raises(igcam.InputError) as raised:
        lite0.explain([CAT, b"not an image"], methods="gradcam")
    assert str(raised.value) == "image 1: cannot decode image: not a PNG or JPEG file (supported: PNG, JPEG)"
    with pytest.raises(igcam.InputError) as raised:
        lite0.explain(two, targets=[1, 2, 3], methods="gradcam")
    assert str(raised.value) == ("`targets` has 3 entries for 2 images: give one per image (each a target or a list of "
                                 "them), or one for all")


def test_grey_and_rgba_arrays_are_converted(lite0):
    rgb = np.asarray(Image.open(CAT).convert("RGB"))
    grey = np.asarray(Image.open(CAT).convert("L"))
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=-1)
    assert np.array_equal(lite0.explain(rgba, methods="gradcam")[0].cam, lite0.explain(rgb, methods="gradcam")[0].cam)
    g = lite0.explain(grey, methods="gradcam")[0]
    assert g.photo[..., 0].tolist() == g.photo[..., 2].tolist()


def rss_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc")
def test_memory_does_not_grow_over_200_calls(lite0):
    rgb = np.asarray(Image.open(CAT).convert("RGB"))
    for _ in range(20):
        lite0.explain(rgb, methods="gradcam")
    before = rss_mb()
    for _ in range(200):
        lite0.explain(rgb, methods="gradcam")
    assert rss_mb() - before < 25, (before, rss_mb())


def test_the_wgpu_backend_gives_the_cpus_maps(lite0):
    """On wgpu (lavapipe in CI, as the Rust wgpu tests; a real GPU elsewhere) within 1e-3."""
    gpu = igcam.Explainer(backend="wgpu")
    assert gpu.backend.startswith("wgpu ("), gpu.backend
    on_gpu = gpu.explain(CAT, targets="top2", methods=["igcam", "gradcam"], steps=4)
    on_cpu = lite0.explain(CAT, targets="top2", methods=["igcam", "gradcam"], steps=4)
    assert len(on_gpu) == len(on_cpu) == 4
    for a, b in zip(on_gpu, on_cpu):
        assert (a.method, a.target) == (b.method, b.target)
        assert rel_l2(a.cam, b.cam) <= 1e-3, (a.method, rel_l2(a.cam, b.cam))
