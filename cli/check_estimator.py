"""``rlexport check-estimator NAME``: export a value estimator to ONNX (dynamic batch and time)
and check ONNX Runtime against eager float64 at other batch sizes and horizons."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import typer

from rlexport.cli.errors import UsageError, console

_DTYPES = ("float32", "float64")
_DEFAULT_TOL = {"float32": (1e-4, 1e-4), "float64": (1e-10, 1e-10)}


def _sizes(batch: int, horizon: int, max_horizon: int) -> list[tuple[int, int]]:
    """Batch sizes and horizons other than the export example's, with T=1 and a long T."""
    sizes = [(1, 1), (batch + 3, max(1, horizon // 3)), (2, min(4 * horizon + 1, max_horizon)), (1, min(5000, max_horizon))]
    return [s for s in dict.fromkeys(sizes) if s != (batch, horizon)]


def register(app: typer.Typer) -> None:
    @app.command("check-estimator")
    def check_estimator_cmd(
        estimator: str = typer.Argument(..., help="gae, td0, td1, td-lambda or vtrace."),
        out: Path = typer.Option(..., "--out", help="Directory for NAME.onnx."),
        gamma: float = typer.Option(0.99, "--gamma", help="Discount."),
        lmbda: float = typer.Option(0.95, "--lmbda", help="Lambda (gae, td-lambda)."),
        dtype: str = typer.Option("float32", "--dtype", help="float32 or float64."),
        batch: int = typer.Option(4, "--batch", help="Batch size of the export example (>= 2)."),
        horizon: int = typer.Option(64, "--horizon", help="Horizon of the export example (>= 2)."),
        rtol: float = typer.Option(None, "--rtol", help="Relative tolerance (default 1e-4 float32, 1e-10 float64)."),
        atol: float = typer.Option(None, "--atol", help="Absolute tolerance (default 1e-4 float32, 1e-10 float64)."),
        max_steps: int = typer.Option(20, "--max-steps", help="Doubling steps in the graph: horizons up to 2**max-steps (longer give NaN)."),
    ) -> None:
        """Export ESTIMATOR to ONNX, run it in ONNX Runtime at other shapes, compare to eager float64.

        Exit 0 when every case is within tolerance, 1 on a mismatch, 2 on bad input.
        """
        import numpy as np
        import onnx
        import torch
        from rich.table import Table

        from rlexport.value.onnx_check import ESTIMATOR_NAMES, build_estimator, example_inputs, export_onnx, ort_session, run_ort

        if estimator not in ESTIMATOR_NAMES:
            raise UsageError(f"estimator {estimator!r} is not supported; choose one of {list(ESTIMATOR_NAMES)}")
        if dtype not in _DTYPES:
            raise UsageError(f"--dtype {dtype!r} is not supported; choose one of {list(_DTYPES)}")
        for name, value in (("--gamma", gamma), ("--lmbda", lmbda)):
            if not math.isfinite(value):
                raise UsageError(f"{name} must be finite, got {value}")
        if batch < 2 or horizon < 2:
            raise UsageError(f"--batch and --horizon must be >= 2 (a size-1 example pins that axis), got {batch} and {horizon}")
        if not 1 <= max_steps <= 40:
            raise UsageError(f"--max-steps must be in [1, 40], got {max_steps}")
        if horizon > 2**max_steps:
            raise UsageError(f"--horizon {horizon} exceeds 2**max-steps = {2**max_steps}")
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {out} exists and is not a directory")
        default_rtol, default_atol = _DEFAULT_TOL[dtype]
        rtol = default_rtol if rtol is None else rtol
        atol = default_atol if atol is None else atol

        torch_dtype = getattr(torch, dtype)
        est = build_estimator(estimator, gamma=gamma, lmbda=lmbda, max_steps=max_steps)
        path = out / f"{estimator}.onnx"
        console.print(f"exporting {estimator} ({dtype}, example batch {batch}, horizon {horizon}) to {path} ...")
        export_onnx(est, example_inputs(est, batch, horizon, torch_dtype), path)
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
        session = ort_session(path)

        table = Table(title=f"{estimator}: ONNX Runtime ({dtype}) vs eager float64")
        for col in ("batch", "horizon", "output", "max abs err", "max rel err", "ok"):
            table.add_column(col, justify="right")
        passed = True
        for b, t in _sizes(batch, horizon, 2**max_steps):
            inputs = example_inputs(est, b, t, torch_dtype, seed=b * 7919 + t)
            got = run_ort(session, inputs)
            ref64 = est(**{k: (v.double() if v.is_floating_point() else v) for k, v in inputs.items()})
            for name, expect in zip(est.out_keys, ref64):
                expect = expect.numpy()
                diff = np.abs(got[name].astype(np.float64) - expect)
                abs_err = float(diff.max())
                rel_err = float((diff / np.maximum(np.abs(expect), 1e-12)).max())
                ok = bool(np.all(diff <= atol + rtol * np.abs(expect)))
                passed &= ok
                table.add_row(str(b), str(t), name, f"{abs_err:.2e}", f"{rel_err:.2e}", "[green]yes[/]" if ok else "[red]NO[/]")
        console.print(table)
        if passed:
            console.print(f"[green]OK[/] {path} matches eager float64 (rtol {rtol:g}, atol {atol:g})")
            return
        console.print(f"[bold red]MISMATCH[/] {path} differs from eager float64 beyond rtol {rtol:g}, atol {atol:g}")
        sys.exit(1)
