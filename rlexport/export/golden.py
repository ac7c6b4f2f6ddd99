"""The golden sample: inputs and reference outputs beside an artifact, readable without Python objects.

Layout (see docs/design.md, "Golden sample format")::

    X.golden/
      index.json
      <case>/<input name>.bin        raw little-endian, C order, no header
      <case>/out.<output name>.bin

Reference outputs are the float64 eager module's, cast to the artifact's dtype. An output entry
may carry its own ``"tolerance": {"rtol", "atol"}`` (conditioning-aware, see
``rlexport.export.common.output_tolerance``); it replaces the top-level ``rtol``/``atol`` for that
output, which stay the defaults for readers that do not know the per-output entry.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlexport.export.common import dumps_json

FORMAT = "rlexport-golden"
VERSION = 1
DTYPES = {
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
    "float16": np.dtype("<f2"),
    "int64": np.dtype("<i8"),
    "int32": np.dtype("<i4"),
    "bool": np.dtype("bool"),
}


class GoldenError(ValueError):
    """A golden sample that is missing, malformed or does not match its files."""


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
    try:
        import torch

        if isinstance(value, torch.Tensor):
            value = value.detach().cpu()
            if value.dtype == torch.bfloat16:
                raise GoldenError("bfloat16 tensors have no golden-sample dtype")
            return value.contiguous().numpy()
    except ImportError:  # pragma: no cover - numpy-only consumers
        pass
    return np.asarray(value)


def _dtype_name(arr: np.ndarray) -> str:
    for name, dt in DTYPES.items():
        if arr.dtype == dt or arr.dtype == dt.newbyteorder("="):
            return name
    raise GoldenError(f"dtype {arr.dtype} has no golden-sample encoding; supported: {list(DTYPES)}")


def _safe(name: str) -> str:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise GoldenError(f"{name!r} cannot be used as a golden file or case name")
    return name


def _write_tensor(root: Path, rel: str, value: Any) -> dict:
    arr = to_numpy(value)
    name = _dtype_name(arr)
    data = np.ascontiguousarray(arr.astype(DTYPES[name], copy=False))
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
    index: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "artifact": artifact,
        "kind": kind,
        "rtol": float(rtol),
        "atol": float(atol),
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
        entry["tolerance"] = {k: float(v) for k, v in tolerance.items()}
    return entry


def _read_tolerance(root: Path, spec: Any, what: str) -> tuple[float, float] | None:
    tol = spec.get("tolerance") if isinstance(spec, Mapping) else None
    if tol is None:
        return None
    try:
        rtol, atol = float(tol["rtol"]), float(tol["atol"])
    except (KeyError, TypeError, ValueError) as err:
        raise GoldenError(f"golden sample {root}: bad tolerance for {what}: {tol!r}") from err
    if not (rtol >= 0 and atol >= 0):
        raise GoldenError(f"golden sample {root}: negative tolerance for {what}: {tol!r}")
    return rtol, atol


def _read_tensor(root: Path, spec: Mapping[str, Any], what: str) -> np.ndarray:
    try:
        dtype = DTYPES[spec["dtype"]]
        shape = tuple(int(s) for s in spec["shape"])
        file = root / spec["file"]
    except (KeyError, TypeError, ValueError) as err:
        raise GoldenError(f"golden sample {root}: bad entry for {what}: {spec!r}") from err
    if not file.resolve().is_relative_to(root.resolve()):
        raise GoldenError(f"golden sample {root}: {what} points outside the sample: {spec['file']!r}")
    if not file.is_file():
        raise GoldenError(f"golden sample {root}: missing file {spec['file']!r} for {what}")
    data = np.fromfile(file, dtype=dtype)
    expected = int(np.prod(shape, dtype=np.int64))
    if data.size != expected:
        raise GoldenError(
            f"golden sample {root}: {spec['file']!r} holds {data.size} {spec['dtype']} values, shape {list(shape)} needs {expected}"
        )
    return data.reshape(shape)


def golden_dir_for(artifact: str | os.PathLike) -> Path:
    from rlexport.export.common import sidecar_paths

    return sidecar_paths(artifact)[2]


def read_golden(path: str | os.PathLike) -> GoldenSample:
    """Read a golden sample: ``path`` is the ``X.golden`` directory, its ``index.json``, or the artifact."""
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
    try:
        index = json.loads(index_file.read_text())
    except json.JSONDecodeError as err:
        raise GoldenError(f"{index_file}: not valid JSON: {err}") from err
    if index.get("format") != FORMAT:
        raise GoldenError(f"{index_file}: format is {index.get('format')!r}, expected {FORMAT!r}")
    if index.get("version") != VERSION:
        raise GoldenError(f"{index_file}: version {index.get('version')!r} is not supported (this reader: {VERSION})")
    cases = []
    for case in index.get("cases", []):
        name = case.get("name", "?")
        cases.append(
            GoldenCase(
                name=name,
                inputs={n: _read_tensor(path, s, f"case {name!r} input {n!r}") for n, s in case.get("inputs", {}).items()},
                outputs={n: _read_tensor(path, s, f"case {name!r} output {n!r}") for n, s in case.get("outputs", {}).items()},
                tolerances={
                    n: tol
                    for n, s in case.get("outputs", {}).items()
                    if (tol := _read_tolerance(path, s, f"case {name!r} output {n!r}")) is not None
                },
            )
        )
    if not cases:
        raise GoldenError(f"{index_file}: no cases")
    return GoldenSample(
        path=path,
        artifact=index.get("artifact", ""),
        kind=index.get("kind", "forward"),
        rtol=float(index.get("rtol", 0.0)),
        atol=float(index.get("atol", 0.0)),
        cases=cases,
        state=dict(index.get("state", {})),
        initial_state={n: _read_tensor(path, s, f"initial_state {n!r}") for n, s in index.get("initial_state", {}).items()},
        index=index,
    )
