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
compared dtype (``rlexport.artifact.tolerance.DEFAULT_TOLERANCES``): float64 rtol 1e-7 / atol 1e-9,
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
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlexport.artifact.dtypes import parse_dtype
from rlexport.artifact.errors import GoldenError
from rlexport.artifact.tolerance import DEFAULT_TOLERANCES, compare, conditioning_errors, merge_errors, output_tolerance
from rlexport.export.aoti import export_aoti
from rlexport.export.onnx import export_onnx
from rlexport.export.plan import as_tuple, cast_example, cast_module, example_dtype, resolve_outputs
from rlexport.export.program import export_program
from rlexport.export.torchscript import export_torchscript
from rlexport.runtime.check import ParityReport, ParityRow, ReportBuilder, check_against_golden, load_sample, message
from rlexport.runtime.check import resolve_tolerance as _tol
from rlexport.runtime.load import BackendUnavailable, load_artifact
from rlexport.runtime.onnx import provider_status

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


# ----------------------------------------------------------------------------- artifacts


def _validate_artifact(path, inputs, backends, rtol, atol) -> ParityReport:
    """Against its golden sample (``inputs`` None: ``rlexport.runtime.check_against_golden``, train
    steps included), or with explicit ``inputs`` the first available backend is the reference."""
    artifact = load_artifact(path)
    if inputs is None:
        try:
            sample = load_sample(artifact)
        except GoldenError as err:
            raise GoldenError(f"{path}: cannot validate without inputs: {err}") from err
        return check_against_golden(artifact, backends, rtol=rtol, atol=atol, sample=sample)
    wanted = list(backends) if backends else artifact.backends()
    for b in wanted:
        if b not in artifact.backends():
            raise ValueError(f"backend {b!r} cannot run a {artifact.format} artifact; choose from {artifact.backends()}")
    cases = [(f"input{i}", _np_inputs(c), None) for i, c in enumerate(_as_cases(inputs))]
    report = ParityReport(reference="first available backend", source=str(path), cases=[c[0] for c in cases])
    acc = ReportBuilder(report)
    for backend in wanted:
        try:
            run = artifact.runner(backend)
        except BackendUnavailable as err:
            report.skipped[backend] = str(err)
            continue
        except Exception as err:  # noqa: BLE001 - a session that cannot be made is a failure
            acc.error(backend, message(err))
            continue
        for i, (name, ins, ref) in enumerate(cases):
            try:
                out = run(ins)
            except Exception as err:  # noqa: BLE001
                acc.error(backend, f"case {name}: {message(err)}", case=name)
                break
            if ref is None:
                cases[i] = (name, ins, out)
                report.reference = backend
                continue
            for key, expected in ref.items():
                r, a = _tol(expected.dtype, rtol, atol)
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
    acc = ReportBuilder(report)
    eager_tols: dict[str, dict[str, tuple[float, float]]] = {}

    def conditioned(dtype_str: str) -> dict[str, tuple[float, float]]:
        """Per output ``(rtol, atol)`` for backends computing in ``dtype_str`` (below float64): the
        defaults widened by how far eager CPU PyTorch in that dtype lands from the reference
        (``rlexport.artifact.tolerance.output_tolerance``), as an export's golden sample records them."""
        if dtype_str not in eager_tols:
            eager_tols[dtype_str] = _eager_tolerances(module, cases, references, dtype_str)
        return eager_tols[dtype_str]

    def check(backend, run, cast_to):
        for i, c in enumerate(cases):
            name = f"input{i}"
            try:
                out = run(cast_example(c, cast_to))
            except Exception as err:  # noqa: BLE001
                acc.error(backend, f"case {name}: {message(err)}", case=name)
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
                reason = provider_status(backend.removeprefix("onnx-"))
                if reason is not None:
                    report.skipped[backend] = reason
                    continue
            if fmt not in artifacts:
                try:
                    artifacts[fmt] = _export_for(fmt, module, cases[0], Path(tmp), dtype, dynamic)
                except Exception as err:  # noqa: BLE001
                    acc.error(backend, f"export failed: {message(err)}")
                    artifacts[fmt] = None
                    continue
            if artifacts[fmt] is None:
                acc.error(backend, "export failed (see above)")
                continue
            try:
                run = load_artifact(artifacts[fmt]).runner(backend)
            except BackendUnavailable as err:
                report.skipped[backend] = str(err)
                continue
            except Exception as err:  # noqa: BLE001
                acc.error(backend, message(err))
                continue
            check(backend, lambda inp, run=run: run({k: v.numpy() for k, v in inp.items()}), dtype)
    return report


def _eager_tolerances(module, cases, references, dtype_str: str) -> dict[str, tuple[float, float]]:
    """``{output: (rtol, atol)}`` from eager CPU ``module`` in ``dtype_str`` against the float64
    ``references`` (max error over the cases); outputs that are not deterministic in float64, or a
    dtype eager cannot run, keep the defaults (absent from the mapping)."""
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
    fn = {
        "pt2": (export_program, "m.pt2"),
        "onnx": (export_onnx, "m.onnx"),
        "torchscript": (export_torchscript, "m.pt"),
        "aoti": (export_aoti, "m.aoti.pt2"),
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
    ``inputs`` is None; a train step's cases run in sequence, state fed back) or an ``nn.Module`` taking keyword tensors (checked against itself in
    float64; ``inputs`` a mapping or a list of mappings). ``backends`` restricts the backends
    (names in ``MODULE_BACKENDS`` or ``Artifact.backends()``). ``rtol``/``atol`` override the
    defaults by dtype. Returns a ``ParityReport``; ``report.passed`` is the verdict.
    """
    if isinstance(artifact_or_module, (str, os.PathLike)):
        return _validate_artifact(Path(artifact_or_module), inputs, backends, rtol, atol)
    if isinstance(artifact_or_module, torch.nn.Module):
        return _validate_module(artifact_or_module, inputs, backends, rtol, atol)
    raise TypeError(f"validate() takes an artifact path or an nn.Module, got {type(artifact_or_module).__name__}")
