"""``rlexport validate ARTIFACT``: run an artifact on every available backend against its golden sample.

The artifact's kind (``X.json``'s ``"kind"``) picks the check:

- forward artifacts (``to-onnx``, ``export``) and gradient graphs (``to-onnx --grad``): every
  backend that can run the file, at every golden case, against the golden outputs;
- train-step graphs (``to-onnx --train-step``): ``rlexport.validate.validate_train_step`` — the
  golden sample's successive steps in ONNX Runtime from its initial state (state fed back),
  against the recorded eager ``torch.optim`` references: the artifact alone, nothing unpickled.

Exit status: 0 every check passed, 1 a mismatch, 2 bad input (missing file, not an artifact, no
golden sample, a backend that cannot run it).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from rlexport.cli.errors import UsageError, console


def artifact_kind(path: Path) -> str:
    """``"forward"``, ``"grad"`` or ``"train_step"`` from the artifact's metadata."""
    from rlexport.runtime.load import load_artifact

    return str(load_artifact(path).meta.get("kind") or "forward")


def train_step_table(report):
    """A ``rich.table.Table`` of a ``TrainStepReport``."""
    from rich.table import Table

    table = Table(title=f"train step vs {report.reference} — {report.path} ({report.optimizer}, {report.dtype}, {report.k} steps)")
    for col in ("quantity", "max abs diff", "bound", "result"):
        table.add_column(col, justify="right" if col != "quantity" else "left")

    def status(ok):
        return "[green]pass[/]" if ok else "[bold red]FAIL[/]"

    failed = " ".join(report.failures)
    table.add_row("parameters", f"{report.max_abs_param_diff:.3g}", f"{report.atol_params:g} abs",
                  status(not any("new.param." in f or "parameter" in f for f in report.failures)))
    table.add_row("optimizer state", f"{report.max_abs_state_diff:.3g}", "-", "[dim]info[/]")
    for name, diff in report.max_abs_loss_diff.items():
        table.add_row(name, f"{diff:.3g}", f"{report.rtol_outputs:g} x max(1, |value|)", status(f": {name} differs" not in failed))
    table.add_row("grad_norm", f"{report.max_abs_grad_norm_diff:.3g}", f"{report.rtol_outputs:g} x max(1, |value|)",
                  status("grad_norm differs" not in failed))
    return table


def register(app: typer.Typer) -> None:
    @app.command("validate")
    def validate_cmd(
        artifact: Path = typer.Argument(..., help="An .onnx, .pt2, TorchScript or AOTInductor artifact with X.golden/ beside it (forward, --grad or --train-step)."),
        backend: Optional[list[str]] = typer.Option(None, "--backend", "-b", help="Only these backends (repeatable): onnx-cpu, onnx-cuda, onnx-tensorrt, pt2, pt2-cuda, torchscript, aoti. Train steps: onnx-cpu or onnx-cuda."),
        rtol: Optional[float] = typer.Option(None, "--rtol", help="Relative tolerance (default: the golden sample's)."),
        atol: Optional[float] = typer.Option(None, "--atol", help="Absolute tolerance (default: the golden sample's)."),
        json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the report as JSON here."),
    ) -> None:
        """Check an artifact against its golden sample on every backend (a train step: its steps in sequence);
        exit 0 all pass, 1 a mismatch, 2 bad input."""
        from rlexport.artifact.errors import ArtifactError, GoldenError
        from rlexport.validate import validate

        try:
            kind = artifact_kind(artifact)
        except (ArtifactError, FileNotFoundError, ValueError) as err:
            raise UsageError(str(err)) from err
        if kind == "train_step":
            _validate_train_step(artifact, backend, rtol, atol, json_out)
            return
        try:
            report = validate(artifact, backends=backend or None, rtol=rtol, atol=atol)
        except (ArtifactError, GoldenError, FileNotFoundError, ValueError, TypeError) as err:
            raise UsageError(str(err)) from err
        console.print(report.table())
        if json_out is not None:
            from rlexport.artifact.jsonio import write_json

            write_json(json_out, {"kind": kind, **report.to_dict()})
        if not report.rows:
            raise UsageError(f"no backend could run {artifact}: " + "; ".join(f"{b}: {r}" for b, r in report.skipped.items()))
        if report.passed:
            console.print(f"[green]OK[/] {report.summary()}")
            return
        console.print(f"[bold red]{report.summary()}[/]")
        sys.exit(1)  # not typer.Exit: main() runs click with standalone_mode=False, which returns Exit codes instead of exiting


PROVIDERS = {"onnx-cpu": "CPUExecutionProvider", "onnx-cuda": "CUDAExecutionProvider"}


def _validate_train_step(artifact: Path, backend, rtol, atol, json_out: Path | None) -> None:
    from rlexport.artifact.errors import ArtifactError
    from rlexport.artifact.jsonio import write_json
    from rlexport.validate import validate_train_step

    providers = None
    if backend:
        unknown = [b for b in backend if b not in PROVIDERS]
        if unknown:
            raise UsageError(f"backend {unknown[0]!r} cannot run a train-step graph; choose from {list(PROVIDERS)}")
        if "onnx-cuda" in backend:
            import onnxruntime as ort

            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise UsageError("backend 'onnx-cuda': ONNX Runtime has no CUDAExecutionProvider here")
        providers = [PROVIDERS[b] for b in backend] + (["CPUExecutionProvider"] if "onnx-cpu" not in backend else [])
    try:
        with console.status(f"running the golden steps of {artifact} in ONNX Runtime ..."):
            report = validate_train_step(artifact, atol=atol, rtol=rtol, providers=providers)
    except (ArtifactError, FileNotFoundError, KeyError, ValueError, TypeError) as err:
        raise UsageError(str(err)) from err
    console.print(train_step_table(report))
    if json_out is not None:
        write_json(json_out, {"kind": "train_step", **report.to_dict()})
    summary = (f"{report.k} steps (batch sizes {min(s for s in report.batch_sizes if s) if any(report.batch_sizes) else '-'}"
               f"..{max((s for s in report.batch_sizes if s), default='-')}): max |param diff| {report.max_abs_param_diff:.3g} "
               f"<= {report.atol_params:g}")
    if report.passed:
        console.print(f"[green]OK[/] {summary}")
        return
    for failure in report.failures[:10]:
        console.print(f"[red]  {failure}[/]")
    if len(report.failures) > 10:
        console.print(f"[red]  ... {len(report.failures) - 10} more[/]")
    console.print(f"[bold red]train step FAILED[/]: {len(report.failures)} mismatches over {report.k} steps")
    sys.exit(1)
