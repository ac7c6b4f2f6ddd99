"""AOTInductor: a compiled package (``.pt2``) loadable from C++ (``torch::inductor::AOTIModelPackageLoader``)
or Python (``torch._inductor.aoti_load_package``). Built for this machine's CPU and torch version;
compiling takes about 10-30 s."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from rlexport.export.common import ExportError, plan_export, quiet


def export_aoti(
    module: torch.nn.Module,
    example: Mapping[str, torch.Tensor],
    path: str | Path,
    *,
    dynamic: bool | Mapping = True,
    dtype: str | torch.dtype | None = None,
    output_names: Sequence[str] | None = None,
    inductor_configs: Mapping | None = None,
    verify: bool = True,
) -> Path:
    """Compile ``module(**example)`` with AOTInductor into a package at ``path`` (use a ``.pt2``
    suffix); returns the written path. Inputs are positional in ``example``'s order (listed in
    ``X.json``), outputs a list in ``out_keys`` order. Verified at the golden cases like every export."""
    import torch._inductor

    from rlexport.export.program import program_from_plan

    plan = plan_export(module, example, dynamic=dynamic, dtype=dtype, output_names=output_names)
    ep = program_from_plan(plan)

    def write(p: Path):
        try:
            with quiet():
                torch._inductor.aoti_compile_and_package(ep, package_path=str(p), inductor_configs=dict(inductor_configs or {}))
        except Exception as err:  # noqa: BLE001
            raise ExportError(f"AOTInductor compilation failed: {type(err).__name__}: {str(err).strip()[:2000]}") from err
        return {"device": "cpu"}

    from rlexport.export.writer import write_artifact

    return write_artifact(plan, path, "aoti", write, verify=verify)
