"""One check of an artifact against its golden sample, used by export's self-verification, by
``rlexport.validate`` and by the training engines.

:func:`check_against_golden` runs every golden case on each backend and compares each output with
the tolerance rule (``rlexport.artifact.tolerance``): the output's own tolerance entry, else the
sample's ``rtol``/``atol``, unless the caller overrides them; integers and booleans exactly. A
``train_step`` sample's cases are successive steps: the backend starts from ``initial_state`` and
each step's ``state`` outputs feed the next step's inputs, as a host would run it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from rich.table import Table

from rlexport.artifact.errors import GoldenError
from rlexport.artifact.golden import GoldenSample, read_golden
from rlexport.artifact.tolerance import check_tolerance, compare, tolerances
from rlexport.runtime.load import Artifact, BackendUnavailable, load_artifact

#: The backend an export verifies itself on, per format.
PRIMARY_BACKEND = {"onnx": "onnx-cpu", "pt2": "pt2", "torchscript": "torchscript", "aoti": "aoti"}


@dataclass
class ParityRow:
    """One backend × one output, worst case over every input case."""

    backend: str
    output: str
    max_abs: float
    max_rel: float
    rtol: float
    atol: float
    passed: bool
    case: str = ""
    error: str | None = None
    dtype: str = ""


@dataclass
class ParityReport:
    reference: str
    rows: list[ParityRow] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    cases: list[str] = field(default_factory=list)
    source: str = ""

    @property
    def passed(self) -> bool:
        return bool(self.rows) and all(r.passed for r in self.rows)

    @property
    def failures(self) -> list[ParityRow]:
        return [r for r in self.rows if not r.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "reference": self.reference,
            "passed": self.passed,
            "cases": self.cases,
            "rows": [asdict(r) for r in self.rows],
            "skipped": self.skipped,
        }

    def summary(self) -> str:
        if self.passed:
            return f"all {len(self.rows)} checks passed against {self.reference} ({len(self.cases)} cases)"
        parts = []
        for r in self.failures:
            if r.error:
                where = f" output {r.output!r} (case {r.case})" if r.output != "*" else ""
                parts.append(f"{r.backend}{where}: {r.error}")
            else:
                parts.append(
                    f"{r.backend} output {r.output!r} (case {r.case}): max abs err {r.max_abs:.3g}, "
                    f"max rel err {r.max_rel:.3g} > rtol {r.rtol:g} / atol {r.atol:g}"
                )
        return "parity FAILED: " + "; ".join(parts)

    def table(self):
        """A ``rich.table.Table`` of the rows and the skipped backends."""
        table = Table(title=f"parity vs {self.reference}" + (f" — {self.source}" if self.source else ""))
        for col in ("backend", "output", "dtype", "max abs err", "max rel err", "rtol / atol", "worst case", "result"):
            table.add_column(col, justify="right" if "err" in col else "left")
        for r in self.rows:
            status = "[green]pass[/]" if r.passed else "[bold red]FAIL[/]"
            if r.error:
                table.add_row(r.backend, r.output, r.dtype, "-", "-", f"{r.rtol:g} / {r.atol:g}", r.case, f"[bold red]ERROR[/] {r.error[:200]}")
            else:
                table.add_row(r.backend, r.output, r.dtype, f"{r.max_abs:.3g}", f"{r.max_rel:.3g}", f"{r.rtol:g} / {r.atol:g}", r.case, status)
        for backend, reason in self.skipped.items():
            table.add_row(backend, "-", "", "", "", "", "", f"[yellow]skipped[/] {reason}")
        return table


class ReportBuilder:
    """Keeps the worst case per (backend, output)."""

    def __init__(self, report: ParityReport):
        self.report = report
        self.rows: dict[tuple[str, str], ParityRow] = {}

    def add(self, backend, output, case, actual, reference, rtol, atol):
        max_abs, max_rel, ok, err = compare(actual, reference, rtol, atol)
        row = self.rows.get((backend, output))
        dtype = str(np.asarray(actual).dtype)
        if row is None:
            row = self.rows[(backend, output)] = ParityRow(backend, output, max_abs, max_rel, rtol, atol, ok, case, err, dtype)
            self.report.rows.append(row)
            return
        if (not ok and row.passed) or (ok == row.passed and max_abs > row.max_abs):
            row.case = case
            row.error = err or row.error
            row.rtol, row.atol = rtol, atol
        row.max_abs = max(row.max_abs, max_abs)
        row.max_rel = max(row.max_rel, max_rel)
        row.passed = row.passed and ok

    def error(self, backend, message, rtol=0.0, atol=0.0, case=""):
        row = ParityRow(backend, "*", float("nan"), float("nan"), rtol, atol, False, case, message)
        self.report.rows.append(row)


def message(err: BaseException) -> str:
    """One line for a failed row: the exception's first line."""
    text = str(err).strip() or type(err).__name__
    first = text.splitlines()[0][:400]
    return first if isinstance(err, RuntimeError) else f"{type(err).__name__}: {first}"


def resolve_tolerance(dtype: Any, rtol: float | None, atol: float | None,
                      default: tuple[float, float] | None = None) -> tuple[float, float]:
    """``(rtol, atol)``: an explicit override, else ``default``, else the dtype's default; integer
    and bool dtypes compare exactly."""
    if not np.issubdtype(np.dtype(dtype), np.floating):
        return 0.0, 0.0
    d_rtol, d_atol = default if default is not None else tolerances(np.dtype(dtype))
    return check_tolerance(d_rtol if rtol is None else rtol, d_atol if atol is None else atol, "tolerance")


def random_ops(artifact: Artifact) -> list[str]:
    """The ``Random*`` operators of an ONNX artifact (no reference can match those)."""
    if artifact.format != "onnx":
        return []
    model = onnx.load_model(str(artifact.path), load_external_data=False)
    return sorted({n.op_type for n in model.graph.node if n.op_type.startswith("Random")})


def load_sample(artifact: Artifact) -> GoldenSample:
    """The artifact's golden sample; ``GoldenError`` when it is missing or written for another file."""
    sample = read_golden(artifact.golden_path)
    if sample.artifact and sample.artifact != artifact.path.name:
        raise GoldenError(
            f"the golden sample {sample.path} was written for {sample.artifact!r}, not {artifact.path.name!r} "
            "(artifacts of one stem share X.json and X.golden: give each format its own name or directory)"
        )
    if sample.kind == "train_step":
        missing = [i for i in sample.state if i not in artifact.input_names]
        bad = [o for o in sample.state.values() if artifact.output_names and o not in artifact.output_names]
        if missing or bad:
            raise GoldenError(f"{sample.path}: 'state' names inputs {missing} / outputs {bad} the artifact does not have")
    check_case_inputs(sample, artifact.input_names)
    return sample


def check_case_inputs(sample: GoldenSample, input_names: Sequence[str]) -> None:
    """``GoldenError`` naming the case and the input when a golden case feeds an input the graph
    does not have, or leaves out one it needs (a train step's ``state`` inputs count as fed)."""
    wanted = set(input_names)
    fed_by_state = set(sample.state) | set(sample.initial_state)
    for case in sample.cases:
        unknown = [k for k in case.inputs if k not in wanted]
        if unknown:
            raise GoldenError(f"{sample.path}: case {case.name!r} gives input {unknown[0]!r}, which the artifact "
                              f"does not have (its inputs: {list(input_names)})")
        absent = [k for k in input_names if k not in case.inputs and k not in fed_by_state]
        if absent:
            raise GoldenError(f"{sample.path}: case {case.name!r} lacks input {absent[0]!r}, which the artifact needs")


def check_against_golden(
    artifact: Artifact | str | Path,
    backends: Sequence[str] | None = None,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    sample: GoldenSample | None = None,
) -> ParityReport:
    """Every golden case of ``artifact`` on each of ``backends`` (default: every backend of its
    format), compared with the reference outputs; backends that cannot run here are listed in
    ``report.skipped``. ``rtol``/``atol`` override the sample's tolerances."""
    if not isinstance(artifact, Artifact):
        artifact = load_artifact(artifact)
    wanted = list(backends) if backends else artifact.backends()
    for b in wanted:
        if b not in artifact.backends():
            raise ValueError(f"backend {b!r} cannot run a {artifact.format} artifact; choose from {artifact.backends()}")
    if sample is None:
        sample = load_sample(artifact)
    else:
        check_case_inputs(sample, artifact.input_names)
    report = ParityReport(reference="golden sample", source=str(artifact.path), cases=[c.name for c in sample.cases])
    acc = ReportBuilder(report)
    drawn = random_ops(artifact)
    for backend in wanted:
        if drawn:
            acc.error(backend, f"the graph draws random numbers ({', '.join(drawn)}), so no reference can match it; "
                               "give the noise as an input (e.g. 'entropy_noise' for a Monte-Carlo entropy)")
            continue
        try:
            run = artifact.runner(backend)
        except BackendUnavailable as err:
            report.skipped[backend] = str(err)
            continue
        except Exception as err:  # noqa: BLE001 - a session that cannot be made is a failed row
            acc.error(backend, message(err))
            continue
        state = dict(sample.initial_state)
        for case in sample.cases:
            try:
                out = run({**state, **case.inputs})
            except Exception as err:  # noqa: BLE001 - e.g. a shape the graph was specialised to
                acc.error(backend, f"case {case.name}: {message(err)}", case=case.name)
                break
            missing = [k for k in case.outputs if k not in out]
            if missing:
                acc.error(backend, f"output {missing[0]!r} missing; the artifact returns {list(out)}", case=case.name)
                break
            for key, expected in case.outputs.items():
                r, a = resolve_tolerance(expected.dtype, rtol, atol, sample.tolerance(case, key))
                acc.add(backend, key, case.name, out[key], expected, r, a)
            state = {i: out[o] for i, o in sample.state.items()}
    return report
