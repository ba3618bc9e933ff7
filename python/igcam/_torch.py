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
            submodule's output is the output of the last ONNX node that ran inside it (for a
            module called more than once, its last call).
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
    original = module
    # The export runs on the CPU in float32 (igcam reads float32 weights): a module elsewhere or
    # in another precision is exported from a copy.
    parameters = list(module.parameters()) + list(module.buffers())
    if any(p.device.type != "cpu" or (p.is_floating_point() and p.dtype != torch.float32) for p in parameters):
        import copy

        module = copy.deepcopy(module).cpu().float()
        layer = _same_submodules(layer, original, module)
    was_training = module.training
    module.eval()
    buffer = io.BytesIO()
    try:
        with torch.no_grad():
            # The exporter folds each BatchNormalization into the convolution before it (EVAL),
            # which igcam runs fastest (the convolution, a residual Add and the activation fuse).
            # A convolution asked for as the layer would then be its BatchNorm's output, not the
            # tensor pytorch-grad-cam hooks: for those, PRESERVE (the module is in eval mode)
            # keeps BatchNormalization as nodes of their own.
            keep_norms = any(isinstance(m, torch.nn.modules.conv._ConvNd) for m in _submodules(layer))
            torch.onnx.export(module, (example_input[:1].detach().cpu().float(),), buffer, dynamo=False,
                              opset_version=opset, input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                              training=torch.onnx.TrainingMode.PRESERVE if keep_norms else torch.onnx.TrainingMode.EVAL)
    except Exception as e:  # the exporter's own errors are many and untyped
        raise ModelError(f"torch.onnx.export failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    finally:
        module.train(was_training)
    data = buffer.getvalue()
    layers = _layer_names(module, onnx.load_from_string(data), layer)
    explainer = Explainer(data, layer=layers or None, **explainer_options)
    explainer.model_name = f"{type(module).__name__} (from_torch)"
    return explainer


def _submodules(layer: Any) -> list:
    """The submodules among ``layer``'s items (names left out)."""
    items = layer if isinstance(layer, (list, tuple)) else [layer]
    return [item for item in items if item is not None and not isinstance(item, str)]


def _same_submodules(layer: Any, original: Any, copied: Any) -> Any:
    """``layer``'s submodules of ``original`` as the same submodules of its copy."""
    if layer is None or isinstance(layer, str):
        return layer
    names = {id(m): name for name, m in original.named_modules()}
    copies = dict(copied.named_modules())
    items = layer if isinstance(layer, (list, tuple)) else [layer]
    out = [item if isinstance(item, str) or id(item) not in names else copies[names[id(item)]] for item in items]
    return out if isinstance(layer, (list, tuple)) else out[0]


def _layer_names(module: Any, graph: Any, layer: Any) -> Optional[list]:
    """ONNX tensor names for ``layer``: submodules (by their output) or names as they are."""
    if layer is None:
        return None
    wanted: Sequence[Any] = layer if isinstance(layer, (list, tuple)) else [layer]
    modules = dict(module.named_modules())
    names_of = {id(m): name for name, m in modules.items()}
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
        out.append(_output_of_module(graph, name, modules))
    return out


def _module_path(node_name: str, modules: dict) -> str:
    """The submodule a node of the legacy exporter ran in, from its name's scopes:
    ``/layer4/layer4.1/relu_1/Relu`` -> ``layer4.1.relu``, ``/features/features.1/features.1.0/
    block/block.0/Conv`` -> ``features.1.0.block.0``, ``/_blocks.0/_depthwise_conv/Conv`` ->
    ``_blocks.0._depthwise_conv``. A scope that repeats its parent's name with a suffix
    (``features.1`` under ``features``) extends it; any other is a child's attribute name. A
    module called again gets ``_1``, ``_2``, ... on its scope, dropped here."""
    path = ""
    previous = ""
    for scope in node_name.strip("/").split("/")[:-1]:
        if previous and scope.startswith(previous + "."):
            step = scope[len(previous) + 1:]
        else:
            step = scope
        candidate = f"{path}.{step}" if path else step
        if candidate not in modules:
            base, _, number = candidate.rpartition("_")
            if number.isdigit() and base in modules:
                candidate = base
        path, previous = candidate, scope
    return path


def _output_of_module(model: Any, name: str, modules: dict) -> str:
    """The output of the last node (in graph order) that ran inside submodule ``name``."""
    inside = [n for n in model.graph.node
              if (lambda path: path == name or path.startswith(name + "."))(_module_path(n.name, modules))]
    if not inside:
        raise InputError(f"the export has no node inside submodule `{name}`; pass an ONNX tensor name instead "
                         "(see Explainer.layers())")
    return inside[-1].output[0]
