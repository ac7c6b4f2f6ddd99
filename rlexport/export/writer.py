"""Write an artifact with its metadata and golden sample, verify it, then move it into place."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from rlexport.export.common import (
    ExportError,
    ExportPlan,
    Staging,
    as_tuple,
    cast_example,
    cast_module,
    label_sizes,
    resize_example,
    tolerances,
    variant_sizes,
    write_json,
)
from rlexport.export.golden import write_golden

PRIMARY_BACKEND = {"onnx": "onnx-cpu", "pt2": "pt2", "torchscript": "torchscript", "aoti": "aoti"}


def golden_cases(plan: ExportPlan) -> list[tuple[str, dict[str, torch.Tensor], dict[str, torch.Tensor]]]:
    """``(name, inputs, reference outputs)``: the example and resized variants (other batch sizes,
    another horizon when there is a time axis); outputs from the float64 eager module cast to the
    artifact dtype."""
    reference = cast_module(plan.original, torch.float64)
    cases = []
    for i, (name, sizes) in enumerate(variant_sizes(label_sizes(plan.example, plan.dims))):
        inputs = plan.example if i == 0 else resize_example(plan.example, plan.dims, sizes, seed=i)
        with torch.no_grad():
            out = as_tuple(reference(**cast_example(inputs, torch.float64)))
        out = [out[j] for j in plan.output_indices]
        outputs = {
            n: (o.to(plan.dtype) if o.dtype.is_floating_point else o) for n, o in zip(plan.output_names, out)
        }
        cases.append((name, {k: v.detach().cpu() for k, v in inputs.items()}, outputs))
    return cases


def write_artifact(
    plan: ExportPlan,
    path: str | Path,
    fmt: str,
    write: Callable[[Path], Mapping[str, Any] | None],
    *,
    verify: bool = True,
) -> Path:
    """Stage ``write(staged_path)``, the golden sample and ``X.json``; verify on the format's
    primary backend at every golden case; then rename all into place. Nothing is left behind on
    error (``ExportError`` carries the parity summary)."""
    with Staging(path) as stage:
        extra = write(stage.artifact) or {}
        rtol, atol = tolerances(plan.dtype)
        write_golden(stage.golden, golden_cases(plan), artifact=stage.final.name, rtol=rtol, atol=atol)
        meta = plan.metadata(fmt, stage.final.name, extra)
        meta["golden"] = stage.final_golden.name
        write_json(stage.json, meta)
        if verify:
            from rlexport.parity import check_staged

            report = check_staged(stage.artifact, PRIMARY_BACKEND[fmt])
            if not report.passed:
                dims = plan.dims or "none (static export)"
                raise ExportError(
                    f"{fmt} export of {type(plan.original).__name__} did not verify against the float64 eager "
                    f"module at {report.cases} (dynamic dims: {dims}); nothing written. {report.summary()}"
                )
        return stage.commit()
