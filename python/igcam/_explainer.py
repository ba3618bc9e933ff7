"""The Python face of igcam's explainer: inputs from PIL, numpy, files or bytes; results with
numpy maps and PIL overlays. All computation happens in the native module (``igcam._igcam``),
with the GIL released."""

from __future__ import annotations

import os
import warnings
from typing import Any, Callable, Dict, NamedTuple, Optional, Sequence, Union

import numpy as np

from . import _igcam
from ._errors import InputError

ImageLike = Any
"""A PIL image, an ``HxWx3`` uint8 array, a ``3xHxW`` float32 array (already normalised), a
file path, or a PNG/JPEG file's bytes."""

Progress = Union[bool, Callable[[int, int], Any], None]


class Layer(NamedTuple):
    """An explainable tensor of the model."""

    name: str
    """ONNX tensor name (what ``layer=`` takes)."""
    op: str
    """Op type of the node that produces it."""
    shape: tuple
    """Its shape for one image."""


class Prediction(NamedTuple):
    """One class of the model's output."""

    index: int
    label: str
    logit: float
    prob: float


class Scores(NamedTuple):
    """``eval``'s metrics of one explanation (see the README's metric table)."""

    drop: float
    """Average Drop: ``max(0, Y - O) / Y`` with only the map's top 15 % of pixels kept."""
    increase: bool
    """Increase in Confidence: ``O > Y``."""
    deletion: float
    """Deletion AUC (lower is better)."""
    insertion: float
    """Insertion AUC (higher is better)."""
    ebpg: Optional[float]
    """Energy-based pointing game: the map's share inside the ground truth (with boxes or a mask)."""
    bbox: Optional[float]
    """Bbox accuracy (with boxes or a mask)."""
    pointing: Optional[bool]
    """Pointing game hit within ``tolerance`` pixels (with boxes or a mask)."""
    extra: Dict[str, Optional[float]] = {}
    """The metrics asked for with ``metrics=`` beyond these, by name (``None`` where one cannot
    be computed, e.g. ``top_k`` without ground truth)."""


def methods() -> list:
    """Every method's name, in the method table's order (``"all"`` runs them all)."""
    return list(_igcam.method_names())


class Explanation:
    """One map: a target class explained with one method on one image.

    ``cam`` is the raw map at the layer's resolution (the input's for pixel IG, FullGrad and
    smoothed or several-layer maps), as ``float32``; ``upsampled`` resizes it to the model's
    input; ``overlay()`` draws it over the photo.
    """

    __slots__ = (
        "image", "target", "target_label", "logit", "prob", "method", "method_name", "layer",
        "steps", "quadrature", "cam", "ms", "convergence_delta", "top5", "photo", "crop", "detection",
        "_request",
    )

    def __init__(self, image: int, record: dict, photo: np.ndarray, top5: list, crop: tuple):
        self.image: int = image
        """Index of the image in the ``explain`` call."""
        self.target: int = record["target"]
        self.target_label: str = record["target_label"]
        self.logit: float = record["logit"]
        """The target's logit on the image."""
        self.prob: float = record["prob"]
        self.method: str = record["method"]
        """The map's label: ``igcam``, ``gradcam``, ``integrated-gradcampp``, ``gradcam+aug-smooth``."""
        self.method_name: str = record["method_name"]
        """The method table's row (``gradcam`` for ``integrated-gradcam`` too)."""
        self.layer: str = record["layer"]
        self.steps: int = record["steps"]
        self.quadrature: Optional[str] = record["quadrature"]
        h, w = record["shape"]
        self.cam: np.ndarray = np.frombuffer(record["cam"], dtype="<f4").reshape(h, w).copy()
        self.ms: float = record["ms"]
        """This map's share of the wall time, in milliseconds."""
        self.convergence_delta: Optional[float] = record["convergence_delta"]
        """Pixel IG's ``sum(map) - (S(x) - S(baseline))`` (Captum's), else ``None``."""
        self.top5: list = top5
        self.photo: np.ndarray = photo
        """The model's input as an ``HxWx3`` uint8 photo (resized and centre-cropped)."""
        self.crop: tuple = crop
        """``(x0, y0, x1, y1)``: where the model's input lies in the original image."""
        self.detection: Optional[dict] = record["detection"]
        """A detector's explained detection: ``index`` (``detN``, the most confident first),
        ``anchor``, ``class``, ``score`` (its confidence, also ``logit`` and ``prob``) and
        ``box`` (``x0, y0, x1, y1`` in the model's input pixels); ``None`` for other models."""
        self._request: Optional[tuple] = None
        # The explain call's settings (`evaluate`'s metrics that explain again redo them).

    @property
    def upsampled(self) -> np.ndarray:
        """The map resized bilinearly to the model's input (the CLI's ``_upsampled.npy``)."""
        h, w = self.photo.shape[:2]
        raw = _igcam.upsample(self.cam.astype("<f4").tobytes(), *self.cam.shape, (h, w))
        return np.frombuffer(raw, dtype="<f4").reshape(h, w).copy()

    def overlay(self, alpha: float = 0.5, colormap: str = "turbo"):
        """The map over the photo as a PIL image (pytorch-grad-cam's ``show_cam_on_image``):
        resized, min-max scaled, coloured (``turbo``, ``viridis``, ``inferno``, ``magma``, ``greys``)
        and blended with opacity ``alpha``."""
        from PIL import Image

        h, w = self.photo.shape[:2]
        return Image.frombytes("RGB", (w, h), self._overlay_rgb(alpha, colormap))

    def _overlay_rgb(self, alpha: float, colormap: str) -> bytes:
        h, w = self.photo.shape[:2]
        return _igcam.overlay(self.photo.tobytes(), (h, w), self.cam.astype("<f4").tobytes(),
                              *self.cam.shape, colormap, float(alpha))

    def _repr_png_(self) -> bytes:
        return _igcam.encode_png(self._overlay_rgb(0.5, "turbo"), self.photo.shape[:2])

    def __repr__(self) -> str:
        h, w = self.cam.shape
        return (f"Explanation(method={self.method!r}, target={self.target} {self.target_label!r}, "
                f"image={self.image}, cam {h}x{w}, {self.ms:.1f} ms)")


class Explainer:
    """A model ready to explain images.

    Args:
        model: an ONNX file's path (its external weights, ``model.onnx.data``, read from beside
            it) or bytes; ``None``: the embedded ImageNet EfficientNet-Lite0. A classifier
            (``[N, classes]``), a segmenter (``[N, classes, H, W]``: each class explained over
            its region, pytorch-grad-cam's ``SemanticSegmentationTarget``) or a YOLO detector
            without NMS (ultralytics' ``[N, 4 + classes, anchors]``, YOLOv5's ``[N, anchors,
            5 + classes]``: each detection kept by the confidence threshold and NMS explained
            through its confidence at its anchor, over the neck outputs the head reads).
        layer: the ONNX tensor to explain (see ``layers()``), or several (each CAM map is then
            averaged over them as pytorch-grad-cam does with several ``target_layers``).
            Default: the model's last convolutional block (``default_layer``).
        backend: ``auto`` (a real GPU through wgpu, else the CPU), ``cpu`` or ``wgpu``.
        threads: CPU threads (default: all cores). The pool is sized once per process.
        labels: class labels (a list, or a file with one per line). Default: the names the
            file holds (ultralytics' and yolov5's ``names`` metadata), else ImageNet's for
            1000-class models, Pascal VOC's (background first) for 21-class segmenters, COCO's
            for 80-class detectors. A
            segmenter's ``top5`` and ``prob`` are its classes' shares of the pixels, ``logit``
            their mean score over their region.
        preprocess: pixel normalisation of photos: ``imagenet``, ``raw01`` or ``caffe``.
            Default: ``imagenet``; ``raw01`` for a detector (ultralytics feeds RGB / 255).
        baseline: the path's start for integrated methods: ``black`` or ``zero``.
        batch: path points per forward/backward chunk (default: 10 at 224x224).
        no_crop: resize the whole photo instead of resize + centre crop (always, for a
            detector).
        max_pixels: the largest image accepted, in pixels.
        lenient: explain truncated JPEGs (the missing part grey) with a warning instead of
            refusing them.
        task: ``auto`` (from the output's shape), or ``classify`` / ``segment`` / ``detect``: the model
            must be that.
        output: for a model with several outputs, the one to explain (default: the first).
        conf, iou, max_det: a detector's confidence threshold, NMS IoU threshold (default 0.7,
            ultralytics'; 0.45 for YOLOv5's layout) and most detections kept (ultralytics'
            ``predict`` defaults).

    Raises:
        igcam.ModelError: the model cannot be loaded.
        igcam.InputError: (a ``ValueError``) an option cannot work.
    """

    def __init__(self, model: Union[str, os.PathLike, bytes, None] = None,
                 layer: Union[str, Sequence[str], None] = None, backend: str = "auto",
                 threads: Optional[int] = None, labels: Union[Sequence[str], str, os.PathLike, None] = None,
                 preprocess: Optional[str] = None, *, baseline: str = "black", batch: Optional[int] = None,
                 no_crop: bool = False, max_pixels: Optional[int] = None, lenient: bool = False,
                 task: str = "auto", output: Optional[str] = None, conf: float = 0.25,
                 iou: Optional[float] = None, max_det: int = 300):
        model_path = None
        if isinstance(model, (str, os.PathLike)):
            self.model_name = model_path = os.fspath(model)
            model = _read(model, "model")
        elif model is None:
            self.model_name = "efficientnet-lite0.onnx (embedded)"
        elif isinstance(model, (bytes, bytearray, memoryview)):
            self.model_name = "model bytes"
            model = bytes(model)
        else:
            raise InputError(f"`model` must be a path, bytes or None, not {type(model).__name__}")
        if isinstance(labels, (str, os.PathLike)):
            labels = [line.strip() for line in _read(labels, "labels").decode().splitlines() if line.strip()]
        elif labels is not None:
            labels = [str(label) for label in labels]
        self._layers = _layer_list(layer)
        _whole("threads", threads)
        _whole("batch", batch)
        _whole("max_pixels", max_pixels)
        _whole("max_det", max_det)
        self._model = _igcam.Model(model, self._layers[0] if self._layers else None, backend,
                                   threads, labels, preprocess, baseline, batch, bool(no_crop), max_pixels,
                                   bool(lenient), model_path, str(task), output,
                                   (float(conf), None if iou is None else float(iou), int(max_det)))
        if self._model.notice:
            warnings.warn(self._model.notice, RuntimeWarning, stacklevel=2)

    @property
    def backend(self) -> str:
        """What runs: ``cpu (Burn flex, N threads)`` or ``wgpu (adapter)``."""
        return self._model.backend

    @property
    def labels(self) -> list:
        return list(self._model.labels)

    @property
    def num_classes(self) -> int:
        return self._model.num_classes

    @property
    def input_size(self) -> tuple:
        """``(height, width)`` of the model's input."""
        return tuple(self._model.input_size)

    @property
    def layer(self) -> str:
        """The explained layer (or layers, comma-separated)."""
        return ",".join(self._layers) if len(self._layers) > 1 else self._model.layer

    @property
    def default_layer(self) -> Optional[str]:
        """The layer explained when none is given: the last convolutional block's output."""
        chosen = self._model.default_layer
        return chosen[0] if chosen else None

    @property
    def default_layer_reason(self) -> Optional[str]:
        """Why ``default_layer`` was chosen."""
        chosen = self._model.default_layer
        return chosen[1] if chosen else None

    def layers(self) -> list:
        """The tensors that can be explained, in graph order (``igcam-wgpu layers``)."""
        return [Layer(name, op, tuple(shape)) for name, op, shape in self._model.layers]

    def explain(self, images: Union[ImageLike, Sequence[ImageLike]],
                targets: Union[str, int, Sequence[Any]] = "top1",
                methods: Union[str, Sequence[str]] = "igcam", steps: int = 50, *,
                batch: Optional[int] = None, baseline: Optional[str] = None,
                integrate: bool = False, quadrature: str = "riemann_left",
                eigen_smooth: bool = False, aug_smooth: bool = False,
                noise_tunnel: Optional[str] = None, nt_samples: int = 5, nt_stdev: float = 1.0,
                seed: int = 0, layer: Union[str, Sequence[str], None] = None, force: bool = False,
                progress: Progress = None, region: Any = None) -> list:
        """Explains ``images`` for ``targets`` with ``methods``: one request per image, one
        backbone pass per chunk of path points for all of its targets and methods.

        Args:
            images: one image or a sequence (or a batch array): PIL images, ``HxWx3`` uint8
                arrays (RGB, resized and centre-cropped like the CLI), ``3xHxW`` / ``Nx3xHxW``
                float32 arrays already normalised for the model (torch tensors too), file paths
                or PNG/JPEG bytes.
            targets: ``top1`` (also ``None``), ``top5`` (``topK``), a class index or a label (a
                segmenter's classes rank by region size; ``present``: all with a region; a
                detector's targets are its detections: ``all``, ``topK`` the most confident,
                ``detN`` one of them, a class its every detection; ``top1`` is the most
                confident only, where the CLI's default is ``all``), for
                every image; for one image, a list of these; for several, a list with one entry
                per image (as pytorch-grad-cam's and Captum's targets: a tensor or array of N
                class indices, or ``ClassifierOutputTarget`` objects, work too), each entry one
                target or a list of them.
            methods: a method name or a list (``igcam.methods()``; ``all``).
            steps: path steps m of the integrated methods (the paper's 50).
            batch: path points per chunk for this call.
            baseline: ``black`` or ``zero`` for this call (default: the explainer's).
            integrate: integrate every CAM method along the path (``integrated-gradcam``, ...).
            quadrature: Captum's ``method``: ``riemann_left`` (the paper's), ``riemann_right``,
                ``riemann_middle``, ``riemann_trapezoid`` or ``gausslegendre``.
            eigen_smooth: pytorch-grad-cam's ``eigen_smooth``.
            aug_smooth: pytorch-grad-cam's ``aug_smooth`` (six times the work).
            noise_tunnel: Captum's NoiseTunnel around every method: ``smoothgrad``,
                ``smoothgrad_sq`` or ``vargrad``, with ``nt_samples`` and ``nt_stdev``.
            seed: seed of everything random (the noise, RandomCAM's weights).
            layer: a layer (or several) for this call instead of the explainer's.
            force: allow more than 10000 steps.
            progress: ``True`` for a tqdm bar, or a callable ``(done, total)`` called after each
                chunk (raising in it stops the request; Ctrl-C does too).
            region: a segmenter's region of one's own, an ``HxW`` array of the model's output
                size (non-zero inside): every target's scores are summed over it instead of over
                the target's own region (pytorch-grad-cam's ``SemanticSegmentationTarget`` mask).

        Returns:
            A list of ``Explanation``, image by image, then target by target, then method by
            method, in the order asked.

        Raises:
            igcam.InputError: a bad option, target or image (with several images, the message
                starts with the image's index; the images before it have been explained).

        Calls from several threads take turns. Do not call the explainer from inside its own
        progress callback, or wait there for another thread that does: the first is refused,
        the second would wait for ever.
        """
        items = _items(images)
        per_image = _targets_per_image(targets, len(items))
        mask = None if region is None else [float(v != 0) for v in np.asarray(region).reshape(-1)]
        _whole("steps", steps)
        _whole("batch", batch)
        _whole("nt_samples", nt_samples)
        _whole("seed", seed)
        method_list = [methods] if isinstance(methods, str) else [str(m) for m in methods]
        layers = _layer_list(layer) if layer is not None else (self._layers if len(self._layers) > 1 else [])
        report, close = _progress(progress)
        out: list = []
        # Progress counts on across images: each request's total joins the earlier ones'.
        counted = {"before": 0, "this": 0}

        def tick(done: int, total: int) -> None:
            counted["this"] = total
            report(counted["before"] + done, counted["before"] + total)

        request = ((steps, integrate, quadrature, eigen_smooth, aug_smooth, noise_tunnel),
                   (nt_samples, float(nt_stdev), seed, tuple(layers), batch, force, baseline))
        try:
            for index, (item, wanted) in enumerate(zip(items, per_image)):
                try:
                    # Read and converted one at a time: memory holds one image's bytes.
                    kind, data, shape = _one(item)
                    result = self._model.explain(
                        kind, data, list(shape), wanted, method_list, steps, integrate, quadrature,
                        eigen_smooth, aug_smooth, noise_tunnel, nt_samples, float(nt_stdev), seed,
                        layers, batch, force, baseline, tick if report else None, mask)
                except InputError as e:
                    if len(items) == 1:
                        raise
                    raise InputError(f"image {index}: {e}") from None
                if result["truncated"]:
                    warnings.warn(f"image {index} is a truncated JPEG; its missing part is grey", RuntimeWarning,
                                  stacklevel=2)
                h, w = result["photo_size"]
                photo = np.frombuffer(result["photo"], dtype=np.uint8).reshape(h, w, 3).copy()
                top5 = [Prediction(*p) for p in result["top5"]]
                crop = tuple(result["crop"])
                for record in result["maps"]:
                    e = Explanation(index, record, photo, top5, crop)
                    e._request = request
                    out.append(e)
                counted["before"] += counted["this"]
                counted["this"] = 0
        finally:
            close()
        return out

    def evaluate(self, explanations: Sequence[Explanation], boxes: Any = None, masks: Any = None, *,
                 score: str = "softmax", curve_steps: int = 16, tolerance: float = 15.0,
                 metrics: Union[str, Sequence[str]] = "default", top_k: int = 1000,
                 flip_step: Optional[int] = None, region_patch: int = 8, regions: int = 100,
                 fc_runs: int = 100, fc_subset: int = 224,
                 road_percentiles: Sequence[float] = (10, 20, 30, 40, 50, 60, 70, 80, 90),
                 road_noise: float = 0.01, road_accuracy_percentages: Sequence[float] = tuple(range(1, 100, 2)),
                 irof_segments: int = 100, ms_samples: int = 10, ms_radius: float = 0.2,
                 mprt_layers: Optional[int] = None, seed: int = 0,
                 max_forwards: int = 2000, max_explanations: int = 100) -> list:
        """Scores explanations with ``igcam-wgpu eval``'s metrics: Drop/Increase and the
        Deletion/Insertion curves (the model runs on edits of each explanation's photo), and,
        given the ground truth, EBPG, Bbox accuracy and the pointing game.

        Args:
            explanations: results of ``explain`` (any images, any methods).
            boxes: the ground truth as boxes ``(x0, y0, x1, y1)`` in the pixels of the model's
                input (``Explanation.photo``; end-exclusive): one list of boxes for every
                explanation, or one list per explanation (``None`` where there is none).
            masks: or as ``HxW`` boolean masks at the model's input: one for all, or one per
                explanation (a list, ``None`` where there is none, or an ``NxHxW`` array).
            score: how confidence is read from the logits: ``softmax``, ``sigmoid`` or ``logit``.
            curve_steps: steps of the Deletion and Insertion curves (and of Pixel-Flipping).
            tolerance: the pointing game's tolerance in pixels.
            metrics: metrics besides the paper's, in ``Scores.extra``: ``"default"`` (none),
                ``"all"``, or names (``eval --metrics``'s): top_k, sparseness, complexity,
                pixel_flipping, region_perturbation, faithfulness_correlation, road_morf,
                road_lerf, road_combined, road_accuracy, irof, max_sensitivity, random_logit, mprt,
                mprt_ssim. The last four explain again with the settings of the ``explain`` call
                that made each map (its methods, steps, baseline, ...).
            top_k, flip_step, region_patch, regions, fc_runs, fc_subset, road_percentiles,
                road_noise, road_accuracy_percentages, irof_segments, ms_samples, ms_radius,
                mprt_layers: their settings, as ``eval``'s switches of the same names.
            seed: Faithfulness Correlation's random subsets and ROAD's noise.
            max_forwards: refuse metrics needing more forward passes per explanation.
            max_explanations: refuse metrics that explain each image again more times.

        Returns:
            One ``Scores`` per explanation, in their order.

        The faithfulness metrics edit ``Explanation.photo``, the 8-bit photo: for an input given
        as normalised floats, that is the input rounded back to 8 bits.
        """
        explanations = list(explanations)
        _whole("curve_steps", curve_steps)
        for name, value, least in [("top_k", top_k, 1), ("region_patch", region_patch, 1), ("regions", regions, 1),
                                   ("fc_runs", fc_runs, 2), ("fc_subset", fc_subset, 1),
                                   ("irof_segments", irof_segments, 1), ("ms_samples", ms_samples, 1),
                                   ("max_explanations", max_explanations, 1),
                                   ("max_forwards", max_forwards, 1), ("seed", seed, 0)]:
            _whole(name, value)
            if value < least:
                raise InputError(f"`{name}` must be at least {least}, not {value}")
        if mprt_layers is not None:
            _whole("mprt_layers", mprt_layers)
            if mprt_layers < 1:
                raise InputError(f"`mprt_layers` must be at least 1, not {mprt_layers}")
        if not (np.isfinite(ms_radius) and ms_radius > 0):
            raise InputError(f"`ms_radius` {ms_radius} must be a finite number above 0")
        if flip_step is not None:
            _whole("flip_step", flip_step)
            if flip_step < 1:
                raise InputError(f"`flip_step` must be at least 1, not {flip_step}")
        if not isinstance(metrics, str):
            metrics = ",".join(metrics)
        names = {n.strip() for n in metrics.split(",")}
        again = bool(names & {"all", "max_sensitivity", "random_logit", "mprt", "mprt_ssim"})
        settings = (top_k, flip_step, region_patch, regions, fc_runs, fc_subset,
                    [float(p) for p in road_percentiles], float(road_noise),
                    [float(p) for p in road_accuracy_percentages], irof_segments, seed)
        if boxes is not None and masks is not None:
            raise InputError("give `boxes` or `masks`, not both")
        if isinstance(boxes, np.ndarray):
            boxes = boxes.tolist()
        if isinstance(masks, np.ndarray) and masks.ndim == 3:
            masks = list(masks)
        per_boxes = _per_explanation(boxes, len(explanations), "boxes", _is_box_list)
        per_masks = _per_explanation(masks, len(explanations), "masks",
                                     lambda m: isinstance(m, np.ndarray) and m.ndim == 2)
        out: list = [None] * len(explanations)
        by_photo: dict = {}
        for i, e in enumerate(explanations):
            if not isinstance(e, Explanation):
                raise InputError(f"`explanations` must hold Explanation results, not {type(e).__name__}")
            # The metrics that explain again score each explain call's maps on their own.
            by_photo.setdefault((id(e.photo), e._request if again else None), []).append(i)
        for (_, request), indices in by_photo.items():
            photo = explanations[indices[0]].photo
            spec = None
            if request is not None:
                methods = list(dict.fromkeys(explanations[i].method_name for i in indices))
                first, second = request
                spec = ((methods, *first), (*second[:3], list(second[3]), *second[4:]))
            jobs = []
            for i in indices:
                e = explanations[i]
                mask = per_masks[i]
                if mask is not None:
                    mask = np.asarray(mask)
                    if mask.shape != photo.shape[:2]:
                        raise InputError(f"a mask has shape {mask.shape} but the model's input is {photo.shape[:2]}")
                    mask = np.ascontiguousarray(mask, dtype=bool).view(np.uint8).tobytes()
                jobs.append((e.cam.astype("<f4").tobytes(), *e.cam.shape, e.target, e.method,
                             _boxes(per_boxes[i]), mask))
            scores = self._model.evaluate(photo.tobytes(), jobs, score, curve_steps, float(tolerance), metrics,
                                          settings, (ms_samples, float(ms_radius), mprt_layers), spec,
                                          max_forwards, max_explanations)
            for i, scored in zip(indices, scores):
                out[i] = Scores(**scored)
        return out

    def __repr__(self) -> str:
        return f"Explainer(model={self.model_name!r}, layer={self.layer!r}, backend={self.backend!r})"


def _read(path: Union[str, os.PathLike], what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise InputError(f"cannot read the {what} file `{os.fspath(path)}`: {e.strerror}") from None


def _is_box_list(value: Any) -> bool:
    """A list of boxes (each four numbers), as opposed to a list of such lists."""
    return isinstance(value, (list, tuple)) and all(
        isinstance(b, (list, tuple, np.ndarray)) and len(b) == 4 and all(np.isscalar(v) for v in b) for b in value)


def _per_explanation(value: Any, count: int, name: str, is_one: Callable[[Any], bool]) -> list:
    """``value`` for each of ``count`` explanations: one for all, or one each."""
    if value is None:
        return [None] * count
    if is_one(value):
        return [value] * count
    if isinstance(value, (list, tuple)) and len(value) == count:
        return list(value)
    raise InputError(f"`{name}` must be one ground truth for every explanation or one per explanation ({count})")


def _boxes(boxes: Any) -> Optional[list]:
    if boxes is None:
        return None
    out = []
    for b in boxes:
        x0, y0, x1, y1 = (int(v) for v in b)
        if min(x0, y0, x1, y1) < 0:
            raise InputError(f"a box {tuple(b)} has a negative coordinate: boxes are pixels of the model's input")
        out.append((x0, y0, x1, y1))
    return out


def _layer_list(layer: Union[str, Sequence[str], None]) -> list:
    if layer is None:
        return []
    if isinstance(layer, str):
        return [part for part in layer.split(",") if part]
    return [str(part) for part in layer]


def _targets_per_image(targets: Any, count: int) -> list:
    """Each image's target specs as strings (``top1``, ``3``, ``tabby``)."""
    if targets is None:  # pytorch-grad-cam's default: the best class
        targets = "top1"
    if hasattr(targets, "tolist"):  # a tensor or an array of class indices
        targets = targets.tolist()

    def spec(t: Any) -> str:
        t = getattr(t, "category", t)  # pytorch-grad-cam's ClassifierOutputTarget
        if hasattr(t, "item") and not isinstance(t, str):
            t = t.item()
        if isinstance(t, (bool, np.bool_)) or not isinstance(t, (str, int, np.integer)):
            raise InputError(f"a target must be a class index, a label, `top1` or `topK`, not {t!r}")
        return t if isinstance(t, str) else str(int(t))

    def specs(t: Any) -> list:
        return [spec(x) for x in t] if isinstance(t, (list, tuple)) else [spec(t)]

    if not isinstance(targets, (list, tuple)):
        return [specs(targets)] * count
    if not targets:
        raise InputError("no target to explain: `targets` is empty")
    if count == 1:
        return [[spec(x) for entry in targets for x in specs(entry)]]
    if len(targets) == 1:
        return [specs(targets[0])] * count
    if len(targets) != count:
        raise InputError(f"`targets` has {len(targets)} entries for {count} images: give one per image "
                         "(each a target or a list of them), or one for all")
    return [specs(t) for t in targets]


def _whole(name: str, value: Any) -> None:
    """Refuses a count that is not a whole number, 0 or more (``None`` passes; the library
    says what 0 means for each)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise InputError(f"`{name}` must be a whole number, 0 or more, not {value!r}")
    if value >= 2**63:
        raise InputError(f"`{name}` {value} is too large")


_ARRAY_SHAPES = ("an image array must be HxWx3 uint8 (RGB; HxW grey and HxWx4 RGBA are converted) or "
                 "3xHxW float32 (already normalised), or a batch of either (NxHxWx3, Nx3xHxW)")


def _items(images: Any) -> list:
    """The images, one item each (a batch array split into views), not yet read."""
    images = _from_torch(images)
    if isinstance(images, np.ndarray):
        if images.ndim == 4:
            if len(images) == 0:
                raise InputError("no image to explain: the batch is empty")
            return list(images)
        return [images]
    if isinstance(images, (list, tuple)):
        if not images:
            raise InputError("no image to explain: `images` is empty")
        return list(images)
    return [images]


def _one(image: Any) -> tuple:
    """``(kind, bytes, shape)`` of one image, for the native module."""
    if isinstance(image, (str, os.PathLike)):
        return ("encoded", _read(image, "image"), [])
    if isinstance(image, (bytes, bytearray, memoryview)):
        return ("encoded", bytes(image), [])
    if hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image
        image = np.asarray(image.convert("RGB"))
    image = _from_torch(image)
    if not isinstance(image, np.ndarray):
        if not hasattr(image, "__array__"):
            raise InputError(f"cannot explain a {type(image).__name__}: pass a PIL image, a numpy array, a path or file bytes")
        image = np.asarray(image)
    if image.dtype == np.uint8 and image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        return ("rgb", np.ascontiguousarray(image).tobytes(), list(image.shape))
    if np.issubdtype(image.dtype, np.floating) and image.ndim == 3 and image.shape[0] == 3:
        return ("normalised", np.ascontiguousarray(image, dtype="<f4").tobytes(), list(image.shape))
    raise InputError(f"{_ARRAY_SHAPES}; got shape {tuple(image.shape)} of {image.dtype}")


def _from_torch(value: Any) -> Any:
    """A torch tensor as a numpy array (on the CPU, half and bfloat16 as float32)."""
    if hasattr(value, "detach") and hasattr(value, "cpu") and hasattr(value, "numpy"):
        value = value.detach().cpu()
        if value.is_floating_point():
            value = value.float()
        return value.numpy()
    return value


def _progress(progress: Progress):
    """``(report(done, total) or None, close())`` for ``progress``."""
    if progress is None or progress is False:
        return None, lambda: None
    if progress is True:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            raise InputError("progress=True needs tqdm: pip install tqdm (or pass a callable)") from None
        bar = tqdm(total=0, unit="step", leave=False)

        def report(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        return report, bar.close
    if callable(progress):
        return progress, lambda: None
    raise InputError(f"`progress` must be True, False, None or a callable, not {type(progress).__name__}")
