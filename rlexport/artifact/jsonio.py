"""Strict JSON for every artifact file: non-finite floats as strings, bounded reads."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlexport.artifact.errors import ArtifactError

#: Largest JSON file (``X.json``, ``index.json``) read, in bytes.
MAX_JSON_BYTES = 16 * 2**20


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as the strings ``"Infinity"``, ``"-Infinity"``, ``"NaN"``.

    Strict JSON has no such numbers (JavaScript's ``JSON.parse`` rejects Python's bare
    ``Infinity``); ``float(s)`` in Python and ``Number(s)`` in JavaScript read the strings back.
    Example: the default ``hp.max_grad_norm = inf`` of a train-step graph.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def dumps_json(data: Any, **kwargs: Any) -> str:
    """Strict JSON (no NaN/Infinity literals) that any language's parser reads."""
    return json.dumps(json_safe(data), allow_nan=False, default=str, **kwargs)


def write_json(path: str | os.PathLike, data: Any) -> None:
    Path(path).write_text(dumps_json(data, indent=2, sort_keys=False) + "\n")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON number {name}")


def read_json(path: str | os.PathLike, *, max_bytes: int = MAX_JSON_BYTES, error: type[ArtifactError] = ArtifactError) -> Any:
    """Parse a strict JSON file; ``error`` (an ``ArtifactError``) when it is missing, larger than
    ``max_bytes``, not valid JSON, or uses the ``NaN``/``Infinity`` literals."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise error(f"{path}: cannot read: {err.strerror or err}") from None
    if size > max_bytes:
        raise error(f"{path}: {size} bytes, more than the {max_bytes} a JSON sidecar may have")
    try:
        return json.loads(path.read_text(), parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as err:
        raise error(f"{path}: not valid JSON: {err}") from None
