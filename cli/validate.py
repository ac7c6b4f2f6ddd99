"""``rlexport validate ARTIFACT``: run an artifact on every available backend against its golden sample."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from rlexport.cli.errors import UsageError, console


def register(app: typer.Typer) -> None:
    @app.command("validate")
    def validate_cmd(
        artifact: Path = typer.Argument(..., help="An .onnx, .pt2, TorchScript or AOTInductor artifact with X.golden/ beside it."),
        backend: Optional[list[str]] = typer.Option(None, "--backend", "-b", help="Only these backends (repeatable): onnx-cpu, onnx-cuda, onnx-tensorrt, pt2, pt2-cuda, torchscript, aoti."),
        rtol: Optional[float] = typer.Option(None, "--rtol", help="Relative tolerance (default: the golden sample's)."),
        atol: Optional[float] = typer.Option(None, "--atol", help="Absolute tolerance (default: the golden sample's)."),
        json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the report as JSON here."),
    ) -> None:
        """Check an artifact against its golden sample on every backend; exit 0 all pass, 1 a mismatch, 2 bad input."""
        from rlexport.export.artifact import ArtifactError
        from rlexport.export.golden import GoldenError
        from rlexport.parity import validate

        try:
            report = validate(artifact, backends=backend or None, rtol=rtol, atol=atol)
        except (ArtifactError, GoldenError, FileNotFoundError, ValueError, TypeError) as err:
            raise UsageError(str(err)) from err
        console.print(report.table())
        if json_out is not None:
            json_out.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        if not report.rows:
            raise UsageError(f"no backend could run {artifact}: " + "; ".join(f"{b}: {r}" for b, r in report.skipped.items()))
        if report.passed:
            console.print(f"[green]OK[/] {report.summary()}")
            return
        console.print(f"[bold red]{report.summary()}[/]")
        sys.exit(1)  # not typer.Exit: main() runs click with standalone_mode=False, which returns Exit codes instead of exiting
