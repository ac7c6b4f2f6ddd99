"""``rlexport validate ARTIFACT``: run an artifact on every available backend against its golden sample.

The artifact's kind (``X.json``'s ``"kind"``) picks the check:

- forward artifacts (``to-onnx``, ``export``) and gradient graphs (``to-onnx --grad``): every
  backend that can run the file, at every golden case, against the golden outputs;
- train-step graphs (``to-onnx --train-step``): ``rlexport.validate.validate_train_step`` — the
  golden sample's successive steps in ONNX Runtime, each step's state fed back, against the
  recorded float64 references: the artifact alone, nothing loaded from a Python object.

Exit status: 0 every check passed, 1 a mismatch, 2 bad input (missing file, not an artifact, no
golden sample, a backend that cannot run it).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from rlexport.cli.errors import UsageError, console
from rlexport.cli.options import check_tolerance
from rlexport.cli.tables import escape, folding_table


def parity_table(report):
    """The rows of a ``rlexport.parity.ParityReport``: long output names fold, never cut; one dtype
    shared by every row goes into the title."""
    dtypes = {r.dtype for r in report.rows}
    shared = dtypes.pop() if len(dtypes) == 1 else None
    columns = ["backend", "output"] + ([] if shared else ["dtype"]) + ["abs err", "rel err", "rtol/atol", "case", "result"]
    longest = max((len(r.output) for r in report.rows), default=6)
    table = folding_table(f"parity vs {report.reference}" + (f" — {report.source}" if report.source else "")
                          + (f" ({shared})" if shared else ""), columns, right=("abs err", "rel err"),
                          min_widths={"output": min(longest, 36)})
    for r in report.rows:
        dtype = [] if shared else [r.dtype]
        tol = f"{r.rtol:g}/{r.atol:g}"
        if r.error:
            table.add_row(escape(r.backend), escape(r.output), *dtype, "-", "-", tol, escape(r.case),
                          f"[bold red]ERROR[/] {escape(r.error)}")
        else:
            table.add_row(escape(r.backend), escape(r.output), *dtype, f"{r.max_abs:.2g}", f"{r.max_rel:.2g}", tol,
                          escape(r.case), "[green]pass[/]" if r.passed else "[bold red]FAIL[/]")
    return table


def skipped_lines(report) -> list[str]:
    return [f"[yellow]skipped[/] {escape(backend)}: {escape(reason)}" for backend, reason in report.skipped.items()]


def train_step_table(report):
    """A ``rich.table.Table`` of a ``TrainStepReport``."""
    table = folding_table(f"train step vs {report.reference} — {report.path} ({report.optimizer}, {report.dtype}, {report.k} steps)",
                          ("quantity", "max abs diff", "bound", "result"), right=("max abs diff", "bound", "result"))

    def status(ok):
        return "[green]pass[/]" if ok else "[bold red]FAIL[/]"

    failed = " ".join(report.failures)
    table.add_row("parameters", f"{report.max_abs_param_diff:.3g}", f"{report.atol_params:g} abs",
                  status(not any("new.param." in f or "parameter" in f for f in report.failures)))
    table.add_row("optimizer state", f"{report.max_abs_state_diff:.3g}", "-", "[dim]info[/]")
    for name, diff in report.max_abs_loss_diff.items():
        table.add_row(escape(name), f"{diff:.3g}", f"{report.rtol_outputs:g} x max(1, |value|)", status(f": {name} differs" not in failed))
    table.add_row("grad_norm", f"{report.max_abs_grad_norm_diff:.3g}", f"{report.rtol_outputs:g} x max(1, |value|)",
                  status("grad_norm differs" not in failed))
    return table


def register(app: typer.Typer) -> None:
    @app.command("validate")
    def validate_cmd(
        artifact: Path = typer.Argument(..., help="The artifact to check: an .onnx, .pt2, TorchScript or AOTInductor file with X.json and X.golden/ beside it (forward, gradient or train-step graph)."),
        backend: Optional[list[str]] = typer.Option(None, "--backend", "-b", help="Check only on this backend (repeatable): onnx-cpu, onnx-cuda, onnx-tensorrt, pt2, pt2-cuda, torchscript or aoti; a train step runs on onnx-cpu or onnx-cuda."),
        rtol: Optional[float] = typer.Option(None, "--rtol", help="The relative tolerance, in [0, 1] (default: the golden sample's; for a train step, of the loss outputs and grad_norm, by dtype)."),
        atol: Optional[float] = typer.Option(None, "--atol", help="The absolute tolerance, in [0, 1] (default: the golden sample's; for a train step, the bound on the largest parameter difference, by dtype)."),
        json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the report as JSON to this file."),
    ) -> None:
        """Check an artifact against its golden sample on every backend that can run it (a train step: its recorded steps in sequence).

        Exit status: 0 when every check passes, 1 on a mismatch, 2 on bad input.
        """
        # heavy (torch, onnx, onnxruntime): imported when the command runs, so that `rlexport --help` stays fast
        from rlexport.artifact.errors import ArtifactError, GoldenError
        from rlexport.artifact.jsonio import write_json
        from rlexport.runtime.load import load_artifact
        from rlexport.validate import validate

        rtol, atol = check_tolerance("--rtol", rtol), check_tolerance("--atol", atol)
        try:
            kind = str(load_artifact(artifact).meta.get("kind") or "forward")
        except (ArtifactError, FileNotFoundError, ValueError) as err:
            raise UsageError(str(err)) from err
        if kind == "train_step":
            _validate_train_step(artifact, backend, rtol, atol, json_out, write_json)
            return
        try:
            report = validate(artifact, backends=backend or None, rtol=rtol, atol=atol)
        except (ArtifactError, GoldenError, FileNotFoundError, ValueError, TypeError) as err:
            raise UsageError(str(err)) from err
        console.print(parity_table(report))
        for line in skipped_lines(report):
            console.print(line)
        if json_out is not None:
            write_json(json_out, {"kind": kind, **report.to_dict()})
        if not report.rows:
            raise UsageError(f"no backend could run {artifact}: " + "; ".join(f"{b}: {r}" for b, r in report.skipped.items()))
        if report.passed:
            console.print(f"[green]OK[/] {escape(report.summary())}")
            return
        console.print(f"[bold red]{escape(report.summary())}[/]")
        sys.exit(1)  # not typer.Exit: main() runs click with standalone_mode=False, which returns Exit codes instead of exiting


PROVIDERS = {"onnx-cpu": "CPUExecutionProvider", "onnx-cuda": "CUDAExecutionProvider"}


def _validate_train_step(artifact: Path, backend, rtol, atol, json_out: Path | None, write_json) -> None:
    # heavy (torch, onnxruntime): imported when the command runs
    import onnxruntime as ort

    from rlexport.artifact.errors import ArtifactError
    from rlexport.validate import validate_train_step

    providers = None
    if backend:
        unknown = [b for b in backend if b not in PROVIDERS]
        if unknown:
            raise UsageError(f"backend {unknown[0]!r} cannot run a train-step graph; choose from {list(PROVIDERS)}")
        if "onnx-cuda" in backend:
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
        console.print(f"[red]  {escape(failure)}[/]")
    if len(report.failures) > 10:
        console.print(f"[red]  ... {len(report.failures) - 10} more[/]")
    console.print(f"[bold red]train step FAILED[/]: {len(report.failures)} mismatches over {report.k} steps")
    sys.exit(1)
