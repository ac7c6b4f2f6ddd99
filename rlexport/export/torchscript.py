"""TorchScript export — deprecated upstream (``torch.jit`` is in maintenance; prefer ``.pt2``,
ONNX or AOTInductor). Kept for LibTorch hosts that load ``torch::jit::load``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from rlexport.artifact.paths import check_output_path
from rlexport.export.capture import positional_adapter
from rlexport.export.plan import ExportError, plan_export, quiet
from rlexport.export.write import write_artifact


def export_torchscript(
    module: torch.nn.Module,
    example: Mapping[str, torch.Tensor],
    path: str | Path,
    *,
    dynamic: bool | Mapping = True,
    dtype: str | torch.dtype | None = None,
    output_names: Sequence[str] | None = None,
    verify: bool = True,
) -> Path:
    """Export ``module(**example)`` to a TorchScript file (``torch.jit.trace`` of the positional
    adapter); returns the written path.

    **Deprecated upstream**: TorchScript is no longer developed by PyTorch; use
    ``export_program``/``export_onnx``/``export_aoti`` when you can.

    Tracing records the Python control flow of the example: a module that loops over the time
    axis (or computes a size in Python) is silently specialised to the example's shapes — a
    traced estimator gives wrong numbers at another horizon. So the trace is always run at other
    batch sizes and horizons (the golden cases) against the float64 eager module; if it does not
    match, ``ExportError`` is raised and nothing is written. Export with ``dynamic=False`` to
    accept a file valid only at the example's shapes.
    """
    check_output_path(path)
    plan = plan_export(module, example, dynamic=dynamic, dtype=dtype, output_names=output_names)
    adapter = positional_adapter(plan.module, plan.input_names, plan.output_indices)
    try:
        with quiet():
            traced = torch.jit.trace(adapter.eval(), plan.args, check_trace=False, strict=False)
    except Exception as err:  # noqa: BLE001
        raise ExportError(f"torch.jit.trace of {type(plan.original).__name__} failed: {type(err).__name__}: {str(err).strip()[:2000]}") from err

    meta = plan.metadata("torchscript", {"torchscript": "trace", "deprecated": "TorchScript is deprecated upstream"})
    try:
        return write_artifact(path, meta, lambda p: traced.save(str(p)), plan.golden(), verify=verify)
    except ExportError as err:
        raise ExportError(f"{err} — the TorchScript trace is specialised to the example's shapes; export with dynamic=False or use pt2/onnx/aoti") from err
