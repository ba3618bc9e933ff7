"""igcam: Integrated Grad-CAM and every pytorch-grad-cam method for any ONNX CNN, in Rust.

>>> import igcam
>>> ex = igcam.Explainer()                      # the embedded ImageNet EfficientNet-Lite0
>>> maps = ex.explain("cat.png", targets="top1", methods=["igcam", "gradcam"])
>>> maps[0].cam.shape, maps[0].target_label
((7, 7), 'Egyptian cat')
>>> maps[0].overlay().save("cat_igcam.png")

``Explainer(model="resnet50.onnx")`` loads any ONNX classifier; ``igcam.from_torch(module)``
exports a PyTorch module first. See ``Explainer.explain`` for every method and option.
"""

from ._errors import Error, InputError, ModelError
from ._explainer import Explainer, Explanation, Layer, Prediction, Scores, methods
from ._torch import from_torch
from ._igcam import __version__

__all__ = [
    "Error",
    "Explainer",
    "Explanation",
    "InputError",
    "Layer",
    "ModelError",
    "Prediction",
    "Scores",
    "from_torch",
    "methods",
    "__version__",
]
