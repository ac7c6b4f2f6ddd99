"""``torch.export``: an ``ExportedProgram`` of a keyword-forward module (saved as ``.pt2``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from rlexport.export.common import ExportError, ExportPlan, plan_export, quiet


def program_from_plan(plan: ExportPlan) -> torch.export.ExportedProgram:
    """Export the positional adapter (argument names = input names) with the plan's dynamic dims."""
    try:
        with quiet():
            return torch.export.export(plan.adapter, plan.args, dynamic_shapes=plan.dynamic_shapes(), strict=False)
    except Exception as first:  # noqa: BLE001 - torch raises many types; keep the message
        err = first
        if plan.dims and "Constraints violated" in str(first):
            # a guard such as ``T != 2`` on a dynamic dim: retry with Dim.DYNAMIC (guards become
            # runtime checks in the program); the verification at other sizes still decides.
            try:
                with quiet():
                    return torch.export.export(plan.adapter, plan.args, dynamic_shapes=plan.dynamic_shapes(relaxed=True), strict=False)
            except Exception as second:  # noqa: BLE001
                err = second
        raise ExportError(
            f"torch.export of {type(plan.original).__name__} failed (dynamic dims {plan.dims or 'none'}): "
            f"{type(err).__name__}: {str(err).strip()[:2000]}"
        ) from err


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
    ``dynamic``: ``True`` (batch and time dims, see ``rlexport.export.common``), ``False``, or an
    explicit ``{input: {dim: label}}``. With ``path`` the program is saved as ``.pt2`` with
    ``X.json`` and ``X.golden/`` beside it, after checking it at other batch sizes/horizons.
    """
    plan = plan_export(module, example, dynamic=dynamic, dtype=dtype, output_names=output_names)
    ep = program_from_plan(plan)
    if path is not None:
        from rlexport.export.writer import write_artifact

        write_artifact(plan, path, "pt2", lambda p: torch.export.save(ep, str(p)), verify=verify)
    return ep
