"""AOTInductor: a compiled package (``.pt2``) loadable from C++ (``torch::inductor::AOTIModelPackageLoader``)
or Python (``torch._inductor.aoti_load_package``). Built for this machine's CPU and torch version;
compiling takes about 10-30 s."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from rlexport.artifact.paths import check_output_path
from rlexport.export.capture import capture_module
from rlexport.export.plan import ExportError, plan_export, quiet
from rlexport.export.write import write_artifact


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
    check_output_path(path)
    plan = plan_export(module, example, dynamic=dynamic, dtype=dtype, output_names=output_names)
    ep = capture_module(plan.module, plan.input_names, plan.args, plan.dims, plan.output_indices, type(plan.original).__name__)

    return write_artifact(path, plan.metadata("aoti", {"device": "cpu"}), lambda p: compile_package(ep, p, inductor_configs),
                          plan.golden(), verify=verify)


def compile_package(ep: torch.export.ExportedProgram, path: Path, inductor_configs: Mapping | None = None) -> None:
    """Compile a captured program into the AOTInductor package ``path`` (the one compile step of
    every AOTI artifact: forward graphs here, train steps in ``rlexport.export.train_step``)."""
    import torch._inductor  # heavy: loads the compiler stack, only for AOTInductor exports

    try:
        with quiet():
            torch._inductor.aoti_compile_and_package(ep, package_path=str(path), inductor_configs=dict(inductor_configs or {}))
    except Exception as err:  # noqa: BLE001
        raise ExportError(f"AOTInductor compilation failed: {type(err).__name__}: {str(err).strip()[:2000]}") from err
