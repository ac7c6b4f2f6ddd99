"""The golden sample: inputs and reference outputs beside an artifact, readable without Python objects.

Layout (see docs/design.md, "Golden sample format")::

    X.golden/
      index.json
      <case>/<input name>.bin        raw little-endian, C order, no header
      <case>/out.<output name>.bin

Reference outputs are the float64 eager module's, cast to the artifact's dtype. An output entry
may carry its own ``"tolerance": {"rtol", "atol"}`` (conditioning-aware, see
``rlexport.artifact.tolerance.output_tolerance``); it replaces the top-level ``rtol``/``atol`` for
that output, which stay the defaults for readers that do not know the per-output entry.

Reads are bounded (:class:`GoldenLimits`): the number of cases, each tensor's size and the total
size; each ``.bin`` file's size is checked against its declared dtype and shape before it is
read, and every tolerance must be finite, ``>= 0`` and within the caps of
``rlexport.artifact.tolerance``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlexport.artifact.dtypes import DTYPES, lookup
from rlexport.artifact.errors import GoldenError
from rlexport.artifact.jsonio import dumps_json, read_json
from rlexport.artifact.paths import golden_dir_for
from rlexport.artifact.tolerance import check_tolerance

FORMAT = "rlexport-golden"
VERSION = 1


@dataclass(frozen=True)
class GoldenLimits:
    """What :func:`read_golden` accepts; a sample beyond these is refused (``GoldenError``).

    Defaults: 256 cases, 256 MiB per tensor, 1 GiB in all, 32 dims per tensor."""

    max_cases: int = 256
    max_tensor_bytes: int = 256 * 2**20
    max_total_bytes: int = 2**30
    max_dims: int = 32


DEFAULT_LIMITS = GoldenLimits()


@dataclass
class GoldenCase:
    name: str
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    tolerances: dict[str, tuple[float, float]] = field(default_factory=dict)  # per output (rtol, atol)


@dataclass
class GoldenSample:
    path: Path
    artifact: str
    kind: str
    rtol: float
    atol: float
    cases: list[GoldenCase]
    state: dict[str, str] = field(default_factory=dict)
    initial_state: dict[str, np.ndarray] = field(default_factory=dict)
    index: dict[str, Any] = field(default_factory=dict)

    def tolerance(self, case: GoldenCase, output: str) -> tuple[float, float]:
        """``(rtol, atol)`` for ``output`` of ``case``: its own entry if it has one, else the sample's."""
        return case.tolerances.get(output, (self.rtol, self.atol))


def to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype == torch.bfloat16:
            raise GoldenError("bfloat16 tensors have no golden-sample dtype")
        return value.contiguous().numpy()
    return np.asarray(value)


def _encoding(arr: np.ndarray) -> str:
    try:
        row = lookup(arr.dtype)
    except ValueError:
        row = None
    if row is None or row.numpy is None:
        raise GoldenError(f"dtype {arr.dtype} has no golden-sample encoding; supported: {_ENCODED}")
    return row.name


_ENCODED = [n for n, d in DTYPES.items() if d.numpy is not None]


def _safe(name: str) -> str:
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith(".") or "\x00" in name:
        raise GoldenError(f"{name!r} cannot be used as a golden file or case name")
    return name


def _write_tensor(root: Path, rel: str, value: Any) -> dict:
    arr = to_numpy(value)
    name = _encoding(arr)
    data = np.require(arr.astype(DTYPES[name].numpy, copy=False), requirements="C")
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(data.tobytes(order="C"))
    return {"dtype": name, "shape": list(arr.shape), "file": rel}


def write_golden(
    path: str | os.PathLike,
    cases: Sequence[tuple[str, Mapping[str, Any], Mapping[str, Any]]],
    *,
    artifact: str,
    kind: str = "forward",
    rtol: float,
    atol: float,
    state: Mapping[str, str] | None = None,
    initial_state: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    tolerances: Mapping[str, Mapping[str, float]] | None = None,
) -> Path:
    """Write ``cases`` — ``(name, inputs, outputs)`` with tensors or arrays — as a golden sample.

    ``path`` is the ``X.golden`` directory (created; it must not hold another sample). For a
    ``"train_step"`` sample give ``state`` (input name -> output name fed back at the next step)
    and ``initial_state``; the cases are then the successive steps. ``tolerances`` (output name ->
    ``{"rtol", "atol", ...}``) is written as each case's ``"tolerance"`` entry of that output.
    """
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    rtol, atol = check_tolerance(rtol, atol, "write_golden", GoldenError)
    index: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "artifact": artifact,
        "kind": kind,
        "rtol": rtol,
        "atol": atol,
    }
    if state is not None:
        index["state"] = dict(state)
    if initial_state is not None:
        index["initial_state"] = {
            n: _write_tensor(root, f"initial_state/{_safe(n)}.bin", v) for n, v in initial_state.items()
        }
    index["cases"] = []
    for name, inputs, outputs in cases:
        _safe(name)
        index["cases"].append(
            {
                "name": name,
                "inputs": {n: _write_tensor(root, f"{name}/{_safe(n)}.bin", v) for n, v in inputs.items()},
                "outputs": {n: _output_entry(root, name, n, v, (tolerances or {}).get(n)) for n, v in outputs.items()},
            }
        )
    index.update(extra or {})
    (root / "index.json").write_text(dumps_json(index, indent=1) + "\n")
    return root


def _output_entry(root: Path, case: str, name: str, value: Any, tolerance: Mapping[str, float] | None) -> dict:
    entry = _write_tensor(root, f"{case}/out.{_safe(name)}.bin", value)
    if tolerance is not None:
        check_tolerance(tolerance["rtol"], tolerance["atol"], f"write_golden: output {name!r}", GoldenError)
        entry["tolerance"] = {k: float(v) for k, v in tolerance.items()}
    return entry


class _Reader:
    """Reads the tensors of one sample within its limits."""

    def __init__(self, root: Path, limits: GoldenLimits):
        self.root = root
        self.real = root.resolve()
        self.limits = limits
        self.total = 0

    def fail(self, message: str) -> GoldenError:
        return GoldenError(f"golden sample {self.root}: {message}")

    def tolerance(self, spec: Any, what: str) -> tuple[float, float] | None:
        tol = spec.get("tolerance") if isinstance(spec, Mapping) else None
        if tol is None:
            return None
        if not isinstance(tol, Mapping) or "rtol" not in tol or "atol" not in tol:
            raise self.fail(f"bad tolerance for {what}: {tol!r}")
        return check_tolerance(tol["rtol"], tol["atol"], f"golden sample {self.root}: {what}", GoldenError)

    def tensor(self, spec: Any, what: str) -> np.ndarray:
        try:
            dtype = DTYPES[spec["dtype"]].numpy
            shape = tuple(int(s) for s in spec["shape"])
            rel = spec["file"]
        except (KeyError, TypeError, ValueError) as err:
            raise self.fail(f"bad entry for {what}: {spec!r}") from err
        if dtype is None or not isinstance(rel, str):
            raise self.fail(f"bad entry for {what}: {spec!r}")
        if len(shape) > self.limits.max_dims or any(s < 0 for s in shape):
            raise self.fail(f"{what} has shape {list(shape)}: negative sizes or more than {self.limits.max_dims} dims")
        nbytes = dtype.itemsize * int(np.prod(shape, dtype=np.float64))
        if nbytes > self.limits.max_tensor_bytes:
            raise self.fail(f"{what} declares {nbytes} bytes, more than the limit of {self.limits.max_tensor_bytes}")
        file = self.root / rel
        if not file.resolve().is_relative_to(self.real):
            raise self.fail(f"{what} points outside the sample: {rel!r}")
        if not file.is_file():
            raise self.fail(f"missing file {rel!r} for {what}")
        size = file.stat().st_size
        if size != nbytes:
            raise self.fail(f"{rel!r} has {size} bytes; {spec['dtype']} {list(shape)} needs {int(nbytes)}")
        self.total += size
        if self.total > self.limits.max_total_bytes:
            raise self.fail(f"more than the limit of {self.limits.max_total_bytes} bytes in all")
        return np.fromfile(file, dtype=dtype).reshape(shape)

    def tensors(self, specs: Any, what: str) -> dict[str, np.ndarray]:
        if not isinstance(specs, Mapping):
            raise self.fail(f"{what} is not a mapping of name -> tensor entry")
        return {n: self.tensor(s, f"{what} {n!r}") for n, s in specs.items()}


def read_golden(path: str | os.PathLike, *, limits: GoldenLimits = DEFAULT_LIMITS) -> GoldenSample:
    """Read a golden sample: ``path`` is the ``X.golden`` directory, its ``index.json``, or the
    artifact. ``GoldenError`` (an ``ArtifactError``) for anything missing, malformed or beyond
    ``limits``."""
    path = Path(path)
    if path.is_file() and path.name == "index.json":
        path = path.parent
    elif not (path / "index.json").is_file():
        candidate = golden_dir_for(path)
        if (candidate / "index.json").is_file():
            path = candidate
    index_file = path / "index.json"
    if not index_file.is_file():
        raise GoldenError(f"no golden sample at {path} (expected {index_file})")
    index = read_json(index_file, error=GoldenError)
    if not isinstance(index, dict):
        raise GoldenError(f"{index_file}: not a JSON object")
    if index.get("format") != FORMAT:
        raise GoldenError(f"{index_file}: format is {index.get('format')!r}, expected {FORMAT!r}")
    if index.get("version") != VERSION:
        raise GoldenError(f"{index_file}: version {index.get('version')!r} is not supported (this reader: {VERSION})")
    reader = _Reader(path, limits)
    rtol, atol = check_tolerance(index.get("rtol", 0.0), index.get("atol", 0.0), f"{index_file}", GoldenError)
    entries = index.get("cases")
    if not isinstance(entries, list) or not entries:
        raise GoldenError(f"{index_file}: no cases")
    if len(entries) > limits.max_cases:
        raise GoldenError(f"{index_file}: {len(entries)} cases, more than the limit of {limits.max_cases}")
    cases = []
    for case in entries:
        if not isinstance(case, Mapping):
            raise GoldenError(f"{index_file}: a case is not a JSON object: {case!r}")
        name = _safe_case(case.get("name"), index_file)
        outputs = case.get("outputs", {})
        cases.append(
            GoldenCase(
                name=name,
                inputs=reader.tensors(case.get("inputs", {}), f"case {name!r} input"),
                outputs=reader.tensors(outputs, f"case {name!r} output"),
                tolerances={
                    n: tol for n, s in outputs.items()
                    if (tol := reader.tolerance(s, f"case {name!r} output {n!r}")) is not None
                },
            )
        )
    state = index.get("state", {})
    if not isinstance(state, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in state.items()):
        raise GoldenError(f"{index_file}: 'state' must map input names to output names")
    return GoldenSample(
        path=path,
        artifact=str(index.get("artifact", "")),
        kind=str(index.get("kind", "forward")),
        rtol=rtol,
        atol=atol,
        cases=cases,
        state=dict(state),
        initial_state=reader.tensors(index.get("initial_state", {}), "initial_state"),
        index=index,
    )


def _safe_case(name: Any, index_file: Path) -> str:
    try:
        return _safe(name)
    except GoldenError:
        raise GoldenError(f"{index_file}: bad case name {name!r}") from None
