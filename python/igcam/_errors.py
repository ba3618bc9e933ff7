"""igcam's exceptions: every message is one line naming the problem and the fix."""


class Error(Exception):
    """Base class of every error igcam raises."""


class InputError(Error, ValueError):
    """Bad input: an option, a target, an image or a layer that cannot work (also a ValueError)."""


class ModelError(Error):
    """The model cannot be loaded or run: not ONNX, an unsupported op, not a CNN classifier."""
