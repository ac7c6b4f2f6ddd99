"""``rlexport check-estimator NAME``: export a value estimator to ONNX (dynamic batch and time) with
``rlexport.export.export_onnx`` and check ONNX Runtime against eager float64 at batch sizes and
horizons other than the export example's (T=1 and a long T included)."""

from __future__ import annotations

import copy
import sys
import tempfile
from pathlib import Path
from typing import Optional

import typer

from rlexport.cli.errors import UsageError, console
from rlexport.cli.options import check_dtype, check_tolerance, check_unit_interval
from rlexport.cli.tables import escape, folding_table

ESTIMATOR_NAMES = ("gae", "td0", "td1", "td-lambda", "vtrace")  # rlexport.models.factory.ESTIMATORS (checked there too)


def _sizes(batch: int, horizon: int, max_horizon: int) -> list[tuple[int, int]]:
    """Batch sizes and horizons other than the export example's, with T=1 and a long T."""
    sizes = [(1, 1), (batch + 3, max(1, horizon // 3)), (2, min(4 * horizon + 1, max_horizon)), (1, min(5000, max_horizon))]
    return [s for s in dict.fromkeys(sizes) if s != (batch, horizon)]


def _check(estimator: str, out: Path, *, gamma: float, lmbda: float, dtype: str, batch: int, horizon: int,
           rtol: float | None, atol: float | None, max_steps: int) -> bool:
    # heavy imports (torch, onnxruntime) only once a command runs: `rlexport --help` stays fast
    import torch

    from rlexport.export import ExportError, export_onnx, load_artifact
    from rlexport.artifact.tolerance import tolerances
    from rlexport.models.factory import BuildError, build_estimator, estimator_example
    from rlexport.validate import compare

    default_rtol, default_atol = tolerances(dtype)
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    torch_dtype = getattr(torch, dtype)
    try:
        est = build_estimator(estimator, gamma=gamma, lmbda=lmbda, max_steps=max_steps)
    except BuildError as err:
        raise UsageError(str(err)) from err
    path = out / f"{estimator}.onnx"
    with console.status(f"exporting {estimator} ({dtype}, example batch {batch}, horizon {horizon}) to {path} ..."):
        try:
            export_onnx(est, estimator_example(est, batch, horizon, torch_dtype), path, dtype=dtype)
        except ExportError as err:
            console.print(f"[bold red]export failed:[/] {escape(str(err))}")
            sys.exit(1)
        run = load_artifact(path).runner("onnx-cpu")
    console.print(f"wrote {escape(str(path))} (+ {path.stem}.json, {path.stem}.golden/; verified at its golden cases)")
    table = folding_table(f"{estimator}: ONNX Runtime ({dtype}) vs eager float64",
                          ["batch", "horizon", "output", "max abs err", "max rel err", "ok"],
                          right=("batch", "horizon", "max abs err", "max rel err"))
    reference_estimator = copy.deepcopy(est).double()
    passed = True
    for b, t in _sizes(batch, horizon, 2**max_steps):
        inputs = estimator_example(est, b, t, torch_dtype, seed=b * 7919 + t)
        got = run({k: v.numpy() for k, v in inputs.items()})
        with torch.no_grad():
            reference = reference_estimator(**{k: (v.double() if v.is_floating_point() else v) for k, v in inputs.items()})
        for name, expected in zip(est.out_keys, reference):
            abs_err, rel_err, ok, _ = compare(got[name], expected.numpy(), rtol, atol)
            passed &= ok
            table.add_row(str(b), str(t), name, f"{abs_err:.2e}", f"{rel_err:.2e}", "[green]yes[/]" if ok else "[red]NO[/]")
    console.print(table)
    verdict = f"{path} {'matches' if passed else 'differs from'} eager float64 (rtol {rtol:g}, atol {atol:g})"
    console.print(("[green]OK[/] " if passed else "[bold red]MISMATCH[/] ") + escape(verdict))
    return passed


def register(app: typer.Typer) -> None:
    @app.command("check-estimator")
    def check_estimator_cmd(
        estimator: str = typer.Argument(..., help="The estimator: gae, td0, td1, td-lambda or vtrace."),
        out: Optional[Path] = typer.Option(None, "--out", help="Directory to write NAME.onnx (with NAME.json and NAME.golden/) into; a temporary one, removed afterwards, when not given."),
        gamma: float = typer.Option(0.99, "--gamma", help="The discount, in [0, 1]."),
        lmbda: float = typer.Option(0.95, "--lmbda", help="The lambda of gae and td-lambda, in [0, 1]."),
        dtype: str = typer.Option("float32", "--dtype", help="The dtype of the exported graph: float32 or float64."),
        batch: int = typer.Option(4, "--batch", help="The batch size of the export example (at least 2)."),
        horizon: int = typer.Option(64, "--horizon", help="The horizon of the export example (at least 2)."),
        rtol: Optional[float] = typer.Option(None, "--rtol", help="The relative tolerance, in [0, 1] (default by dtype: 1e-4 for float32, 1e-7 for float64)."),
        atol: Optional[float] = typer.Option(None, "--atol", help="The absolute tolerance, in [0, 1] (default by dtype: 1e-5 for float32, 1e-9 for float64)."),
        max_steps: int = typer.Option(20, "--max-steps", help="Doubling steps in the graph, 1 to 40: it is exact for horizons up to 2**max-steps and returns NaN beyond."),
    ) -> None:
        """Export ESTIMATOR to ONNX, run it in ONNX Runtime at other batch sizes and horizons, and compare with eager float64.

        Exit status: 0 when every case is within tolerance, 1 on a mismatch, 2 on bad input.
        """
        if estimator not in ESTIMATOR_NAMES:
            raise UsageError(f"estimator {estimator!r} is not supported; choose one of {list(ESTIMATOR_NAMES)}")
        check_dtype(dtype)
        check_unit_interval("--gamma", gamma)
        check_unit_interval("--lmbda", lmbda)
        rtol, atol = check_tolerance("--rtol", rtol), check_tolerance("--atol", atol)
        if batch < 2 or horizon < 2:
            raise UsageError(f"--batch and --horizon must be >= 2 (a size-1 example pins that axis), got {batch} and {horizon}")
        if not 1 <= max_steps <= 40:
            raise UsageError(f"--max-steps must be in [1, 40], got {max_steps}")
        if horizon > 2**max_steps:
            raise UsageError(f"--horizon {horizon} exceeds 2**max-steps = {2**max_steps}")
        if out is not None and out.exists() and not out.is_dir():
            raise UsageError(f"--out {out} exists and is not a directory")
        options = dict(gamma=gamma, lmbda=lmbda, dtype=dtype, batch=batch, horizon=horizon, rtol=rtol, atol=atol,
                       max_steps=max_steps)
        if out is None:
            with tempfile.TemporaryDirectory(prefix="rlexport-check-") as tmp:
                console.print(f"no --out: writing into the temporary directory {escape(tmp)} (removed afterwards)")
                passed = _check(estimator, Path(tmp), **options)
        else:
            passed = _check(estimator, out, **options)
        if not passed:
            sys.exit(1)
