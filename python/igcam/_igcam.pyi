"""The native half of igcam (PyO3). Use ``igcam.Explainer``; these are its building blocks."""

from typing import Any, Callable, Optional

__version__: str

class Model:
    backend: str
    labels: list[str]
    layer: str
    default_layer: Optional[tuple[str, str]]
    input_size: tuple[int, int]
    num_classes: int
    def __init__(self, model: Optional[bytes], layer: Optional[str], backend: str,
                 threads: Optional[int], labels: Optional[list[str]], preprocess: Optional[str],
                 baseline: str, batch: Optional[int], no_crop: bool,
                 max_pixels: Optional[int], lenient: bool,
                 model_path: Optional[str] = None, task: str = "auto",
                 output: Optional[str] = None,
                 detect: tuple[float, Optional[float], int] = (0.25, None, 300)) -> None: ...
    def layers(self) -> list[tuple[str, str, list[int]]]: ...
    def explain(self, kind: str, data: bytes, shape: list[int], targets: list[str],
                methods: list[str], steps: int, integrate: bool, quadrature: str,
                eigen_smooth: bool, aug_smooth: bool, noise_tunnel: Optional[str],
                nt_samples: int, nt_stdev: float, seed: int, layers: list[str],
                batch: Optional[int], force: bool, baseline: Optional[str],
                progress: Optional[Callable[[int, int], Any]],
                region: Optional[list[float]] = None) -> dict[str, Any]: ...
    def evaluate(self, photo: bytes,
                 maps: list[tuple[bytes, int, int, int, str, Optional[list[tuple[int, int, int, int]]],
                                  Optional[bytes]]],
                 score: str, curve_steps: int, tolerance: float, metrics: str,
                 settings: tuple[int, Optional[int], int, int, int, int, list[float], float, list[float], int, int],
                 redo_settings: tuple[int, float, Optional[int]],
                 again: Optional[tuple[tuple[list[str], int, bool, str, bool, bool, Optional[str]],
                                       tuple[int, float, int, list[str], Optional[int], bool, Optional[str]]]],
                 max_forwards: int, max_explanations: int) -> list[dict[str, Any]]: ...

def upsample(values: bytes, height: int, width: int, size: tuple[int, int]) -> bytes: ...
def overlay(photo: bytes, photo_size: tuple[int, int], values: bytes, height: int, width: int,
            colormap: str, alpha: float) -> bytes: ...
def encode_png(rgb: bytes, size: tuple[int, int]) -> bytes: ...
def method_names() -> list[str]: ...
