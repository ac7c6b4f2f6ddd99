"""ONNX export (``torch.onnx.export(dynamo=True)`` of the ``torch.export`` program).

The graph's input names are the keyword names, its output names the ``out_keys``; dynamic dims
are named by their labels (``batch``, ``time``) in ONNX ``dim_param``s. ``metadata_props`` carry
``rlexport.*`` keys (JSON values): ``rlexport_version``, ``torch_version``, ``class``, ``config``,
``out_keys``, ``input_names``, ``dynamic_axes``, ``dtype``, ``kind``, ``format``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from rlexport.export.common import ExportError, ExportPlan, plan_export, quiet, set_onnx_metadata

METADATA_KEYS = ("format", "kind", "rlexport_version", "torch_version", "class", "config", "dtype", "input_names", "out_keys", "dynamic_axes")


def onnx_model_from_plan(plan: ExportPlan, *, opset: int | None = None, optimize: bool = True):
    """The ``onnx.ModelProto`` for a plan (checked with ``onnx.checker`` full check), metadata set."""
    import onnx

    from rlexport.export.program import program_from_plan

    ep = program_from_plan(plan)
    try:
        with quiet():
            program = torch.onnx.export(
                ep,
                (),
                input_names=plan.input_names,
                output_names=plan.output_names,
                opset_version=opset,
                dynamo=True,
                optimize=optimize,
                verbose=False,
            )
    except Exception as err:  # noqa: BLE001
        raise ExportError(f"ONNX export of {type(plan.original).__name__} failed: {type(err).__name__}: {str(err).strip()[:2000]}") from err
    model = program.model_proto
    _check_names(model, plan)
    rename_dims(model, plan.dims)
    meta = plan.metadata("onnx", "")
    meta["opset"] = opset_of(model)
    set_onnx_metadata(model, {key: meta[key] for key in METADATA_KEYS + ("opset",)})
    model.producer_name = "rlexport"
    model.doc_string = f"{type(plan.original).__name__} exported by rlexport; outputs {plan.output_names}"
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as err:  # noqa: BLE001
        raise ExportError(f"the exported ONNX model fails onnx.checker (full check): {err}") from err
    return model


def rename_dims(model, dims) -> None:
    """Name the ONNX ``dim_param``s by their labels (``batch``, ``time``) instead of ``s0``, ``s11``."""
    import re

    mapping: dict[str, str] = {}
    for value in model.graph.input:
        for d, dim in enumerate(value.type.tensor_type.shape.dim):
            label = dims.get(value.name, {}).get(d)
            if label is not None and dim.dim_param and dim.dim_param != label:
                mapping.setdefault(dim.dim_param, label)
    if not mapping:
        return
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, mapping)) + r")\b")
    for value in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
        if not value.type.HasField("tensor_type"):
            continue
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param:
                dim.dim_param = pattern.sub(lambda m: mapping[m.group(1)], dim.dim_param)


def opset_of(model) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _check_names(model, plan: ExportPlan) -> None:
    inits = {i.name for i in model.graph.initializer}
    ins = [i.name for i in model.graph.input if i.name not in inits]
    outs = [o.name for o in model.graph.output]
    if outs != plan.output_names:
        raise ExportError(f"ONNX outputs are {outs}, expected {plan.output_names}")
    missing = [n for n in ins if n not in plan.input_names]
    if missing:
        raise ExportError(f"ONNX inputs {ins} do not match the example's names {plan.input_names}")


def export_onnx(
    module: torch.nn.Module,
    example: Mapping[str, torch.Tensor],
    path: str | Path,
    *,
    dynamic: bool | Mapping = True,
    opset: int | None = None,
    dtype: str | torch.dtype | None = None,
    output_names: Sequence[str] | None = None,
    verify: bool = True,
) -> Path:
    """Export ``module(**example)`` to ONNX at ``path``; returns the written path.

    ``dynamic``: ``True`` (batch and time dims), ``False`` or ``{input: {dim: label}}`` (see
    ``rlexport.export.common``). ``opset``: the default opset of the torch exporter (20) when
    None. ``dtype``: cast the module and the floating inputs first (``"float32"``/``"float64"``).
    ``output_names``: keep only these outputs (a subset of ``out_keys``, in the given order).
    Beside it: ``X.json`` and ``X.golden/``. The model is checked with ``onnx.checker`` (full)
    and, unless ``verify=False``, run in ONNX Runtime (CPU) at every golden case; on any failure
    ``ExportError`` is raised and nothing is written.
    """
    import onnx

    plan = plan_export(module, example, dynamic=dynamic, dtype=dtype, output_names=output_names)
    model = onnx_model_from_plan(plan, opset=opset)

    def write(p: Path):
        onnx.save_model(model, str(p))
        return {"opset": opset_of(model), "nodes": len(model.graph.node)}

    from rlexport.export.writer import write_artifact

    return write_artifact(plan, path, "onnx", write, verify=verify)
