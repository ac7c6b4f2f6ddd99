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
    conditioning_errors,
    label_sizes,
    merge_errors,
    output_tolerance,
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
    return golden_reference(plan)[0]


def golden_reference(plan: ExportPlan) -> tuple[list[tuple[str, dict, dict]], dict[str, dict[str, float]]]:
    """``(cases, tolerances)``: the golden cases (see ``golden_cases``) and, for an artifact in a
    dtype below float64, each float output's tolerance (``output_tolerance``): eager PyTorch in the
    artifact dtype is run on the same inputs (and on ulp-jittered copies, ``conditioning_errors``)
    and its largest error against the float64 reference, over all cases, sets how far the
    artifact may land. float64 artifacts: no per-output entries.

    An output that differs between two float64 runs (a module drawing random numbers) keeps the
    defaults: its eager error measures the noise, not the precision."""
    reference = cast_module(plan.original, torch.float64)
    lower = plan.dtype.is_floating_point and torch.finfo(plan.dtype).bits < 64
    names = plan.output_names

    def run(module, inputs):
        out = as_tuple(module(**inputs))
        return {n: out[j] for n, j in zip(names, plan.output_indices)}

    errors: dict[str, float | None] = {}
    cases = []
    for i, (name, sizes) in enumerate(variant_sizes(label_sizes(plan.example, plan.dims))):
        inputs = plan.example if i == 0 else resize_example(plan.example, plan.dims, sizes, seed=i)
        inputs64 = cast_example(inputs, torch.float64)
        with torch.no_grad():
            ref = run(reference, inputs64)
        if lower:
            try:
                merge_errors(errors, conditioning_errors(
                    lambda x: run(plan.module, x), lambda: run(reference, inputs64), inputs, ref, seed=i))
            except Exception:  # noqa: BLE001 - no eager kernels in this dtype: keep the defaults
                lower, errors = False, {}
        outputs = {n: (o.to(plan.dtype) if o.dtype.is_floating_point else o) for n, o in ref.items()}
        cases.append((name, {k: v.detach().cpu() for k, v in inputs.items()}, outputs))
    tols = {n: output_tolerance(plan.dtype, err) for n, err in errors.items()}
    return cases, tols


def tolerance_rule(dtype: torch.dtype) -> dict:
    """How the per-output tolerances of a golden sample were set (recorded in its index.json)."""
    from rlexport.export.common import EAGER_ERROR_FACTOR, EAGER_JITTER_DRAWS, dtype_name

    return {
        "rule": "atol = max(default atol, factor * eager_abs_err); eager_abs_err = max |eager in dtype - "
        "float64 reference| over the cases, on the inputs and on jitter_draws copies moved by +-1 ulp",
        "dtype": dtype_name(dtype),
        "factor": EAGER_ERROR_FACTOR,
        "jitter_draws": EAGER_JITTER_DRAWS,
    }


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
        cases, output_tols = golden_reference(plan)
        extra_index = {"tolerance_rule": tolerance_rule(plan.dtype)} if output_tols else None
        write_golden(stage.golden, cases, artifact=stage.final.name, rtol=rtol, atol=atol,
                     tolerances=output_tols, extra=extra_index)
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
