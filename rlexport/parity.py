"""Parity validation: the same inputs through every available backend, one report.

``validate(module, inputs)`` compares against the float64 eager module (the reference):

- ``eager-float32`` (CPU), ``eager-cuda``, and exports made on the fly in a temporary directory:
  ``pt2`` (torch.export), ``torchscript``, ``onnx-cpu`` / ``onnx-cuda`` / ``onnx-tensorrt``
  (ONNX Runtime providers) and ``aoti`` (AOTInductor; 10–30 s to compile, so only when asked).

``validate("X.onnx")`` (or ``.pt2``, TorchScript, AOTInductor) checks a standalone artifact
against its golden sample ``X.golden/`` alone — no Python module needed — on every backend that
can run it (``onnx-*`` providers, ``pt2``/``pt2-cuda``, ...). With explicit ``inputs`` and no
golden outputs, the artifact's first available backend is the reference for the others.

Backends that cannot run here are listed in ``report.skipped`` with the reason ("no CUDA
device", "provider not installed"). An error while running a backend (an ORT session that cannot
be created, a shape the graph was specialised to) is a failed row with the message.

A value passes when ``|x - ref| <= atol + rtol * |ref|`` elementwise. Default tolerances by the
compared dtype (``rlexport.export.common.DEFAULT_TOLERANCES``): float64 rtol 1e-7 / atol 1e-9,
float32 rtol 1e-4 / atol 1e-5, float16 5e-3 / 1e-3; integer and bool outputs must be equal.
An artifact's golden sample carries its own tolerances, which are used unless overridden: the
sample's top-level ``rtol``/``atol``, and per output the ``"tolerance"`` entry that a
lower-precision export records from how far eager PyTorch in that dtype lands from float64
(conditioning-aware; docs/design.md, "Golden sample format"). ``validate(module)`` applies the
same rule to its lower-precision backends.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlexport.export.common import DEFAULT_TOLERANCES, tolerances

MODULE_BACKENDS = [
    "eager-float32",
    "eager-cuda",
    "pt2",
    "torchscript",
    "onnx-cpu",
    "onnx-cuda",
    "onnx-tensorrt",
    "aoti",
]
REFERENCE = "eager-float64"
SLOW_BACKENDS = {"aoti": "AOTInductor compiles for 10-30 s: ask for it with backends=['aoti']"}

__all__ = ["ParityRow", "ParityReport", "validate", "compare", "DEFAULT_TOLERANCES"]


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
                parts.append(f"{r.backend}: {r.error}")
            else:
                parts.append(
                    f"{r.backend} output {r.output!r} (case {r.case}): max abs err {r.max_abs:.3g}, "
                    f"max rel err {r.max_rel:.3g} > rtol {r.rtol:g} / atol {r.atol:g}"
                )
        return "parity FAILED: " + "; ".join(parts)

    def table(self):
        """A ``rich.table.Table`` of the rows and the skipped backends."""
        from rich.table import Table

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


def compare(actual: np.ndarray, reference: np.ndarray, rtol: float, atol: float) -> tuple[float, float, bool, str | None]:
    """``(max abs err, max rel err, passed, error)`` for one output."""
    actual = np.asarray(actual)
    reference = np.asarray(reference)
    if actual.shape != reference.shape:
        return float("inf"), float("inf"), False, f"shape {list(actual.shape)} != reference {list(reference.shape)}"
    if actual.size == 0:
        return 0.0, 0.0, True, None
    if not (np.issubdtype(reference.dtype, np.floating) or np.issubdtype(actual.dtype, np.floating)):
        diff = np.abs(actual.astype(np.int64) - reference.astype(np.int64))
        err = float(diff.max())
        return err, err, err == 0, None
    a = actual.astype(np.float64)
    r = reference.astype(np.float64)
    same_nonfinite = (np.isnan(a) & np.isnan(r)) | (np.isinf(a) & np.isinf(r) & (np.sign(a) == np.sign(r)))
    diff = np.where(same_nonfinite, 0.0, np.abs(a - r))
    diff = np.where(np.isnan(diff), np.inf, diff)
    rel = diff / np.maximum(np.abs(r), np.finfo(np.float64).tiny)
    rel = np.where(diff == 0, 0.0, rel)
    ok = bool(np.all(diff <= atol + rtol * np.abs(np.where(np.isfinite(r), r, 0.0))))
    return float(diff.max()), float(rel.max()), ok, None


class _Acc:
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


def _message(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return f"{type(err).__name__}: {text.splitlines()[0][:400]}" if not isinstance(err, RuntimeError) else text.splitlines()[0][:400]


def _tol(dtype: Any, rtol: float | None, atol: float | None, default: tuple[float, float] | None = None) -> tuple[float, float]:
    d_rtol, d_atol = default if default is not None else tolerances(_np_dtype_name(dtype))
    return (d_rtol if rtol is None else rtol), (d_atol if atol is None else atol)


def _np_dtype_name(dtype: Any) -> str:
    name = str(np.dtype(dtype)) if not hasattr(dtype, "is_floating_point") else str(dtype).removeprefix("torch.")
    return name


# ----------------------------------------------------------------------------- artifacts


def _validate_artifact(path, inputs, backends, rtol, atol) -> ParityReport:
    from rlexport.export.artifact import BackendUnavailable, load_artifact
    from rlexport.export.golden import GoldenError, read_golden

    artifact = load_artifact(path)
    wanted = list(backends) if backends else artifact.backends()
    for b in wanted:
        if b not in artifact.backends():
            raise ValueError(f"backend {b!r} cannot run a {artifact.format} artifact; choose from {artifact.backends()}")
    report = ParityReport(reference="golden sample", source=str(path))
    golden_tol = None
    case_tols: dict[str, dict[str, tuple[float, float]]] = {}
    if inputs is None:
        try:
            sample = read_golden(artifact.golden_path)
        except GoldenError as err:
            raise GoldenError(f"{path}: cannot validate without inputs: {err}") from err
        if sample.artifact and sample.artifact != artifact.path.name:
            raise GoldenError(
                f"the golden sample {sample.path} was written for {sample.artifact!r}, not {artifact.path.name!r} "
                "(artifacts of one stem share X.json and X.golden: give each format its own name or directory)"
            )
        cases = [(c.name, c.inputs, c.outputs) for c in sample.cases]
        case_tols = {c.name: c.tolerances for c in sample.cases}
        if sample.kind not in ("forward", "grad"):
            # a train step is a sequence of stateful steps: rlexport.export.validate_train_step
            raise ValueError(
                f"{path}: golden sample of kind {sample.kind!r}; validate() checks forward and gradient artifacts "
                "(train steps: rlexport.export.validate_train_step)"
            )
        golden_tol = (sample.rtol, sample.atol)
    else:
        cases = [(f"input{i}", _np_inputs(c), None) for i, c in enumerate(_as_cases(inputs))]
        report.reference = "first available backend"
    report.cases = [c[0] for c in cases]
    acc = _Acc(report)
    for backend in wanted:
        try:
            run = artifact.runner(backend)
        except BackendUnavailable as err:
            report.skipped[backend] = str(err)
            continue
        except Exception as err:  # noqa: BLE001 - a session that cannot be made is a failure
            acc.error(backend, _message(err))
            continue
        for i, (name, ins, ref) in enumerate(cases):
            try:
                out = run(ins)
            except Exception as err:  # noqa: BLE001
                acc.error(backend, f"case {name}: {_message(err)}", case=name)
                break
            if ref is None:
                cases[i] = (name, ins, out)
                report.reference = backend
                continue
            missing = [k for k in ref if k not in out]
            if missing:
                acc.error(backend, f"output {missing[0]!r} missing; the artifact returns {list(out)}", case=name)
                break
            for key, expected in ref.items():
                default = case_tols.get(name, {}).get(key, golden_tol)  # the output's own entry first
                r, a = _tol(expected.dtype, rtol, atol, default if np.issubdtype(expected.dtype, np.floating) else (0.0, 0.0))
                acc.add(backend, key, name, out[key], expected, r, a)
    return report


def _np_inputs(case: Mapping[str, Any]) -> dict[str, np.ndarray]:
    out = {}
    for k, v in case.items():
        if hasattr(v, "detach"):
            v = v.detach().cpu().numpy()
        out[k] = np.asarray(v)
    return out


def _as_cases(inputs) -> list[Mapping[str, Any]]:
    if isinstance(inputs, Mapping):
        return [inputs]
    if isinstance(inputs, Sequence) and inputs and all(isinstance(c, Mapping) for c in inputs):
        return list(inputs)
    raise TypeError("inputs must be a mapping of input name -> tensor, or a list of such mappings")


# ----------------------------------------------------------------------------- modules


def _validate_module(module, inputs, backends, rtol, atol, dynamic=True) -> ParityReport:
    import torch

    from rlexport.export.common import as_tuple, cast_example, cast_module, example_dtype, resolve_outputs

    if inputs is None:
        if hasattr(module, "example_inputs"):
            inputs = module.example_inputs()
        else:
            raise TypeError("validate(module) needs inputs= (a mapping name -> tensor, or a list of them)")
    cases = [dict(c) for c in _as_cases(inputs)]
    wanted = list(backends) if backends else [b for b in MODULE_BACKENDS if b not in SLOW_BACKENDS]
    unknown = [b for b in wanted if b not in MODULE_BACKENDS + [REFERENCE]]
    if unknown:
        raise ValueError(f"unknown backend {unknown[0]!r}; choose from {MODULE_BACKENDS}")
    report = ParityReport(reference=REFERENCE, source=type(module).__name__, cases=[f"input{i}" for i in range(len(cases))])
    if not backends:
        report.skipped.update(SLOW_BACKENDS)
    ref_module = cast_module(module, torch.float64)
    dtype = example_dtype(cases[0])
    references = []
    with torch.no_grad():
        for c in cases:
            out = as_tuple(ref_module(**cast_example(c, torch.float64)))
            names, _ = resolve_outputs(module, len(out), None)
            references.append({n: o.numpy() for n, o in zip(names, out)})
    acc = _Acc(report)
    eager_tols: dict[str, dict[str, tuple[float, float]]] = {}

    def conditioned(dtype_str: str) -> dict[str, tuple[float, float]]:
        """Per output ``(rtol, atol)`` for backends computing in ``dtype_str`` (below float64): the
        defaults widened by how far eager CPU PyTorch in that dtype lands from the reference
        (``rlexport.export.common.output_tolerance``), as an export's golden sample records them."""
        if dtype_str not in eager_tols:
            eager_tols[dtype_str] = _eager_tolerances(module, cases, references, dtype_str)
        return eager_tols[dtype_str]

    def check(backend, run, cast_to):
        for i, c in enumerate(cases):
            name = f"input{i}"
            try:
                out = run(cast_example(c, cast_to))
            except Exception as err:  # noqa: BLE001
                acc.error(backend, f"case {name}: {_message(err)}", case=name)
                return
            for key, ref in references[i].items():
                actual = np.asarray(out[key])
                if np.issubdtype(ref.dtype, np.floating) and np.issubdtype(actual.dtype, np.floating) and actual.dtype.itemsize < 8:
                    r, a = _tol(actual.dtype, rtol, atol, conditioned(str(actual.dtype)).get(key))
                else:
                    r, a = _tol(actual.dtype, rtol, atol) if np.issubdtype(ref.dtype, np.floating) else (0.0, 0.0)
                expected = ref.astype(actual.dtype) if np.issubdtype(actual.dtype, np.floating) else ref
                acc.add(backend, key, name, actual, expected, r, a)

    def eager(device, cast_to):
        m = cast_module(module, cast_to).to(device)

        def run(inp):
            with torch.no_grad():
                out = as_tuple(m(**{k: v.to(device) for k, v in inp.items()}))
            names, _ = resolve_outputs(module, len(out), None)
            return {n: o.detach().cpu().numpy() for n, o in zip(names, out)}

        return run

    artifacts: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="rlexport-parity-") as tmp:
        for backend in wanted:
            if backend == REFERENCE:
                continue
            if backend == "eager-float32":
                check(backend, eager("cpu", torch.float32), torch.float32)
                continue
            if backend == "eager-cuda":
                if not torch.cuda.is_available():
                    report.skipped[backend] = "no CUDA device"
                    continue
                check(backend, eager("cuda", dtype), dtype)
                continue
            fmt = backend.split("-")[0]
            if backend.startswith("onnx-"):
                from rlexport.runtime.onnx import provider_status

                reason = provider_status(backend.removeprefix("onnx-"))
                if reason is not None:
                    report.skipped[backend] = reason
                    continue
            if fmt not in artifacts:
                try:
                    artifacts[fmt] = _export_for(fmt, module, cases[0], Path(tmp), dtype, dynamic)
                except Exception as err:  # noqa: BLE001
                    acc.error(backend, f"export failed: {_message(err)}")
                    artifacts[fmt] = None
                    continue
            if artifacts[fmt] is None:
                acc.error(backend, "export failed (see above)")
                continue
            from rlexport.export.artifact import BackendUnavailable, load_artifact

            try:
                run = load_artifact(artifacts[fmt]).runner(backend)
            except BackendUnavailable as err:
                report.skipped[backend] = str(err)
                continue
            except Exception as err:  # noqa: BLE001
                acc.error(backend, _message(err))
                continue
            check(backend, lambda inp, run=run: run({k: v.numpy() for k, v in inp.items()}), dtype)
    return report


def _eager_tolerances(module, cases, references, dtype_str: str) -> dict[str, tuple[float, float]]:
    """``{output: (rtol, atol)}`` from eager CPU ``module`` in ``dtype_str`` against the float64
    ``references`` (max error over the cases); outputs that are not deterministic in float64, or a
    dtype eager cannot run, keep the defaults (absent from the mapping)."""
    import torch

    from rlexport.export.common import (
        as_tuple,
        cast_example,
        cast_module,
        conditioning_errors,
        merge_errors,
        output_tolerance,
        parse_dtype,
        resolve_outputs,
    )

    def runner(m):
        def run(inputs):
            out = as_tuple(m(**inputs))
            names, _ = resolve_outputs(module, len(out), None)
            return dict(zip(names, out))

        return run

    errors: dict[str, float | None] = {}
    try:
        tdtype = parse_dtype(dtype_str)
        low, ref64 = runner(cast_module(module, tdtype)), runner(cast_module(module, torch.float64))
        for i, (c, refs) in enumerate(zip(cases, references)):
            ref = {n: torch.as_tensor(np.array(r)) for n, r in refs.items()}  # np.array keeps 0-d arrays 0-d
            c64 = cast_example(c, torch.float64)
            merge_errors(errors, conditioning_errors(low, lambda c64=c64: ref64(c64), cast_example(c, tdtype), ref, seed=i))
    except Exception:  # noqa: BLE001 - no eager kernels in this dtype: defaults
        return {}
    out = {}
    for n, err in errors.items():
        if err is not None:
            tol = output_tolerance(dtype_str, err)
            out[n] = (tol["rtol"], tol["atol"])
    return out


def _export_for(fmt: str, module, example, tmp: Path, dtype, dynamic) -> Path:
    from rlexport import export

    fn = {
        "pt2": (export.export_program, "m.pt2"),
        "onnx": (export.export_onnx, "m.onnx"),
        "torchscript": (export.export_torchscript, "m.pt"),
        "aoti": (export.export_aoti, "m.aoti.pt2"),
    }[fmt]
    path = tmp / fn[1]
    fn[0](module, example, path, dynamic=dynamic, dtype=dtype, verify=False)
    return path


# ----------------------------------------------------------------------------- entry point


def validate(
    artifact_or_module,
    inputs=None,
    *,
    backends: Sequence[str] | None = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> ParityReport:
    """Run the same inputs through every available backend and compare with the reference.

    ``artifact_or_module``: a path to an artifact (checked against its golden sample when
    ``inputs`` is None) or an ``nn.Module`` taking keyword tensors (checked against itself in
    float64; ``inputs`` a mapping or a list of mappings). ``backends`` restricts the backends
    (names in ``MODULE_BACKENDS`` or ``Artifact.backends()``). ``rtol``/``atol`` override the
    defaults by dtype. Returns a ``ParityReport``; ``report.passed`` is the verdict.
    """
    import torch

    if isinstance(artifact_or_module, (str, os.PathLike)):
        return _validate_artifact(Path(artifact_or_module), inputs, backends, rtol, atol)
    if isinstance(artifact_or_module, torch.nn.Module):
        return _validate_module(artifact_or_module, inputs, backends, rtol, atol)
    raise TypeError(f"validate() takes an artifact path or an nn.Module, got {type(artifact_or_module).__name__}")


def check_staged(path: Path, backend: str) -> ParityReport:
    """Used by the exporters: the freshly written artifact against its golden sample on one backend."""
    return _validate_artifact(path, None, [backend], None, None)
