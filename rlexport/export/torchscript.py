"""TorchScript export — deprecated upstream (``torch.jit`` is in maintenance; prefer ``.pt2``,
ONNX or AOTInductor). Kept for LibTorch hosts that load ``torch::jit::load``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from rlexport.export.common import ExportError, plan_export, quiet


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
    plan = plan_export(module, example, dynamic=dynamic, dtype=dtype, output_names=output_names)
    try:
        with quiet():
            traced = torch.jit.trace(plan.adapter.eval(), plan.args, check_trace=False, strict=False)
    except Exception as err:  # noqa: BLE001
        raise ExportError(f"torch.jit.trace of {type(plan.original).__name__} failed: {type(err).__name__}: {str(err).strip()[:2000]}") from err

    def write(p: Path):
        traced.save(str(p))
        return {"torchscript": "trace", "deprecated": "TorchScript is deprecated upstream"}

    from rlexport.export.writer import write_artifact

    try:
        return write_artifact(plan, path, "torchscript", write, verify=verify)
    except ExportError as err:
        raise ExportError(f"{err} — the TorchScript trace is specialised to the example's shapes; export with dynamic=False or use pt2/onnx/aoti") from err
