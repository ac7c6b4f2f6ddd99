"""One exported ONNX graph, many weights: a *template* and :func:`bake_onnx`.

A template is ``export_onnx`` of the module with its parameters (and the buffers named in
``buffers``, e.g. observation-normalisation statistics) as further graph inputs,
``lifted_<name with . as _>``; it embeds none of their values, so one template serves every
module of the same structure (what a graph cache keys on: ``rlexport.train.graph_cache``).

:func:`bake_onnx` writes the module's own artifact from a template: the lifted inputs become
initializers holding the module's current values, and what remains is exactly the signature
``export_onnx(module, example)`` gives (the module's inputs, in example order, dynamic dims
named by label; its outputs). The rest is what ``export_onnx`` does after translation: the
metadata of the module's export plan, the golden sample from the float64 eager module with its
current values, ``onnx.checker`` (full), verification in ONNX Runtime at every golden case and
the atomic write (``rlexport.export.write``). A template that does not fit the module (inputs,
shapes or dtypes) raises ``ExportError`` before anything is written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import onnx
import torch
from onnx import numpy_helper
from torch import nn

from rlexport.artifact.paths import check_output_path
from rlexport.export.onnx import describe_model, export_onnx, opset_of, save_onnx
from rlexport.export.plan import ExportError, plan_export
from rlexport.export.write import write_artifact

LIFTED_PREFIX = "lifted_"


class LiftedTensors(nn.Module):
    """``module(**inputs)`` with its parameters and the buffers ``buffers`` as further keyword
    inputs ``<prefix><name with . as _>`` (``torch.func.functional_call``; ``export_onnx`` names
    graph inputs by keyword, so they must be Python identifiers); ``names`` maps each keyword to
    the tensor's name in ``module``."""

    def __init__(self, module: nn.Module, buffers: Sequence[str] = (), prefix: str = LIFTED_PREFIX):
        super().__init__()
        self.module = module
        own = dict(module.named_buffers())
        missing = [b for b in buffers if b not in own]
        if missing:
            raise ValueError(f"{type(module).__name__} has no buffer {missing[0]!r}; its buffers: {sorted(own)}")
        tensors = [n for n, _ in module.named_parameters()] + list(buffers)
        self.names = {prefix + n.replace(".", "_"): n for n in tensors}
        if len(self.names) != len(tensors):
            raise ValueError(f"{type(module).__name__}: tensor names collide once '.' becomes '_': {tensors}")
        self.in_keys = list(self.names) + list(getattr(module, "in_keys", []))
        if hasattr(module, "out_keys"):
            self.out_keys = list(module.out_keys)

    def values(self) -> dict[str, torch.Tensor]:
        """The module's current values, by lifted input name."""
        own = {**dict(self.module.named_parameters()), **dict(self.module.named_buffers())}
        return {k: own[n].detach().clone() for k, n in self.names.items()}

    def forward(self, **inputs: torch.Tensor):
        lifted = {self.names[k]: v for k, v in inputs.items() if k in self.names}
        rest = {k: v for k, v in inputs.items() if k not in self.names}
        return torch.func.functional_call(self.module, lifted, args=(), kwargs=rest)


def export_onnx_template(module: nn.Module, example: Mapping[str, torch.Tensor], path: str | Path, *,
                         buffers: Sequence[str] = (), dynamic: bool | Mapping = True) -> Path:
    """The template of ``module`` at ``path`` (``X.json``, ``X.golden/`` from the current values,
    verified): ``export_onnx`` of :class:`LiftedTensors` with the dynamic dims of the module's own
    export plan (the lifted inputs are static)."""
    plan = plan_export(module, example, dynamic=dynamic)
    wrapper = LiftedTensors(module, buffers)
    return export_onnx(wrapper, {**wrapper.values(), **plan.example}, path, dynamic=plan.dims,
                       output_names=plan.output_names)


def bake_onnx(template: str | Path, module: nn.Module, example: Mapping[str, torch.Tensor], path: str | Path, *,
              buffers: Sequence[str] = (), dynamic: bool | Mapping = True, verify: bool = True) -> Path:
    """Write ``module``'s ONNX artifact at ``path`` from ``template`` (see the module docstring):
    what ``export_onnx(module, example, path, dynamic=dynamic)`` writes, without capturing or
    translating the module again. Returns the written path."""
    check_output_path(path)
    plan = plan_export(module, example, dynamic=dynamic)
    what = type(plan.original).__name__
    values = LiftedTensors(module, buffers).values()
    model = onnx.load(str(template))
    graph = model.graph
    initialized = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initialized]
    names = [i.name for i in inputs]
    if sorted(names) != sorted([*values, *plan.input_names]):
        raise ExportError(f"the template {template} does not fit {what}: its inputs {names}, expected "
                          f"{[*values, *plan.input_names]}")
    for value_info in inputs:
        if value_info.name not in values:
            continue
        value = values[value_info.name]
        want = onnx.helper.np_dtype_to_tensor_dtype(value.numpy().dtype)
        tensor_type = value_info.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
        if tensor_type.elem_type != want or shape != list(value.shape):
            raise ExportError(f"the template {template} does not fit {what}: input {value_info.name} is "
                              f"{onnx.TensorProto.DataType.Name(tensor_type.elem_type)} {shape}, the value "
                              f"{value.dtype} {list(value.shape)}")
    kept = [i for i in graph.input if i.name not in values]
    if [i.name for i in kept if i.name not in initialized] != plan.input_names:
        raise ExportError(f"the template {template} orders its inputs {names}, not {plan.input_names}")
    if [o.name for o in graph.output] != plan.output_names:
        raise ExportError(f"the template {template} has outputs {[o.name for o in graph.output]}, "
                          f"not {plan.output_names}")
    del graph.input[:]
    graph.input.extend(kept)
    graph.initializer.extend(numpy_helper.from_array(v.numpy(), name) for name, v in values.items())
    describe_model(model, what, plan.output_names)
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as err:  # noqa: BLE001
        raise ExportError(f"the baked ONNX model of {what} fails onnx.checker (full check): {err}") from err
    meta = plan.metadata("onnx", {"opset": opset_of(model), "nodes": len(graph.node)})
    return write_artifact(path, meta, lambda p: save_onnx(model, meta, p), plan.golden(), verify=verify)
