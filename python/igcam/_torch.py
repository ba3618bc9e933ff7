"""``igcam.from_torch``: a PyTorch module exported to ONNX and loaded into an ``Explainer``."""

from __future__ import annotations

import io
from typing import Any, Optional, Sequence, Union

from ._errors import InputError, ModelError
from ._explainer import Explainer


def from_torch(module: Any, example_input: Any = None, *, layer: Any = None, opset: int = 17,
               **explainer_options: Any) -> Explainer:
    """Exports ``module`` with ``torch.onnx.export`` and returns an ``Explainer`` on it.

    Args:
        module: a ``torch.nn.Module`` classifier taking ``[N, 3, H, W]`` images.
        example_input: an input to trace with (default: zeros of ``[1, 3, 224, 224]``). Only its
            shape matters; the batch axis is exported as dynamic.
        layer: the layer to explain, as pytorch-grad-cam's ``target_layers`` take it: a
            submodule (``model.layer4[-1]``), a list of submodules, or ONNX tensor names. The
            submodule's output is the output of the last ONNX node under its name.
        opset: the ONNX opset to export with.
        **explainer_options: ``Explainer``'s other arguments (``backend``, ``labels``, ...).

    Requires ``torch`` and ``onnx`` (``pip install igcam[torch]``).
    """
    try:
        import onnx
        import torch
    except ImportError as e:
        raise ImportError(f"igcam.from_torch needs PyTorch and onnx: pip install torch onnx ({e})") from None
    if not isinstance(module, torch.nn.Module):
        raise InputError(f"`module` must be a torch.nn.Module, not {type(module).__name__}")
    if example_input is None:
        example_input = torch.zeros(1, 3, 224, 224)
    if not isinstance(example_input, torch.Tensor) or example_input.dim() != 4:
        raise InputError("`example_input` must be a [N, 3, H, W] torch.Tensor")
    was_training = module.training
    module.eval()
    buffer = io.BytesIO()
    try:
        with torch.no_grad():
            torch.onnx.export(module, (example_input[:1].detach().float(),), buffer, dynamo=False,
                              opset_version=opset, input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    except Exception as e:  # the exporter's own errors are many and untyped
        raise ModelError(f"torch.onnx.export failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    finally:
        module.train(was_training)
    data = buffer.getvalue()
    layers = _layer_names(module, onnx.load_from_string(data), layer)
    explainer = Explainer(data, layer=layers or None, **explainer_options)
    explainer.model_name = f"{type(module).__name__} (from_torch)"
    return explainer


def _layer_names(module: Any, graph: Any, layer: Any) -> Optional[list]:
    """ONNX tensor names for ``layer``: submodules (by their output) or names as they are."""
    if layer is None:
        return None
    wanted: Sequence[Any] = layer if isinstance(layer, (list, tuple)) else [layer]
    names_of = {id(m): name for name, m in module.named_modules()}
    out = []
    for item in wanted:
        if isinstance(item, str):
            out.append(item)
            continue
        name = names_of.get(id(item))
        if name is None:
            raise InputError("`layer` is not a submodule of `module`: pass e.g. model.layer4[-1], or an ONNX tensor name")
        if name == "":
            raise InputError("`layer` is the whole module: pass one of its submodules, e.g. model.layer4[-1]")
        out.append(_output_of_scope(graph, name))
    return out


def _output_of_scope(model: Any, name: str) -> str:
    """The output of the last node under the exporter's name scope for submodule ``name``
    (``layer4.1`` -> ``/layer4/layer4.1/...``)."""
    parts = name.split(".")
    scope = "/" + "/".join(".".join(parts[: i + 1]) for i in range(len(parts))) + "/"
    nodes = [n for n in model.graph.node if n.name.startswith(scope)]
    if not nodes:
        raise InputError(f"the export has no node under `{scope}` for submodule `{name}`; pass an ONNX tensor name instead (see Explainer.layers())")
    return nodes[-1].output[0]
