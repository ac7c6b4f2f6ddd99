"""``torch.export``: an ``ExportedProgram`` of a keyword-forward module (saved as ``.pt2``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from rlexport.artifact.paths import check_output_path
from rlexport.export.capture import capture_module
from rlexport.export.plan import plan_export
from rlexport.export.write import write_artifact


def export_program(
    module: torch.nn.Module,
    example: Mapping[str, torch.Tensor],
    path: str | Path | None = None,
    *,
    dynamic: bool | Mapping = True,
    dtype: str | torch.dtype | None = None,
    output_names: Sequence[str] | None = None,
    verify: bool = True,
) -> torch.export.ExportedProgram:
    """``torch.export`` ``module`` called as ``module(**example)``.

    The program takes the inputs positionally in ``example``'s order (its placeholders carry the
    input names) and returns a tuple in ``out_keys`` order (or ``output_names``, a subset of them).
    ``dynamic``: ``True`` (batch and time dims, see ``rlexport.export.plan``), ``False``, or an
    explicit ``{input: {dim: label}}``. With ``path`` the program is saved as ``.pt2`` with
    ``X.json`` and ``X.golden/`` beside it, after checking it at other batch sizes/horizons.
    """
    if path is not None:
        check_output_path(path)
    plan = plan_export(module, example, dynamic=dynamic, dtype=dtype, output_names=output_names)
    ep = capture_module(plan.module, plan.input_names, plan.args, plan.dims, plan.output_indices, type(plan.original).__name__)
    if path is not None:
        write_artifact(path, plan.metadata("pt2"), lambda p: torch.export.save(ep, str(p)), plan.golden(), verify=verify)
    return ep
