"""Helpers of the CLI tests: the one-line error check, a folder digest, artifact tampering."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import onnx
from tamper import reseal


def one_error_line(code: int, text: str, needle: str) -> None:
    """Exit 2 with exactly one line, ``error: ...`` containing ``needle`` (whitespace-normalised)."""
    assert code == 2, text
    lines = [line for line in text.strip().splitlines() if line.strip()]
    joined = " ".join(" ".join(lines).split())
    assert lines[0].startswith("error:") and needle in joined, text
    assert len(lines) == 1 or len(text.strip()) > 250, text  # one line (rich wraps only past the width)


def tree_digest(path: Path) -> str:
    """A digest of every file name and content under ``path``."""
    h = hashlib.sha256()
    for p in sorted(Path(path).rglob("*")):
        h.update(str(p.relative_to(path)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def copy_artifact(src: Path, dst_dir: Path) -> Path:
    """A copy of the artifact ``src`` with every sidecar (``X.*``) in ``dst_dir``."""
    dst_dir.mkdir()
    stem = src.name[: -len(src.suffix)]
    for p in src.parent.iterdir():
        if p.name.startswith(stem + "."):
            (shutil.copytree if p.is_dir() else shutil.copy)(p, dst_dir / p.name)
    return dst_dir / src.name


def scale_constants(src: Path, dst_dir: Path) -> Path:
    """A copy of the ONNX artifact ``src`` (with its sidecars) whose small float constants
    (coefficients, 0 < |v| < 1) are scaled by 1.5, digests re-recorded (well-formed, numerically
    wrong): ``validate`` must then fail with exit 1."""
    path = copy_artifact(src, dst_dir)
    model = onnx.load(str(path))
    changed = 0
    for init in model.graph.initializer:
        arr = onnx.numpy_helper.to_array(init)
        if arr.dtype.kind == "f" and arr.size and np.all((np.abs(arr) >= 1e-3) & (np.abs(arr) < 1)):
            init.CopyFrom(onnx.numpy_helper.from_array((arr * 1.5).astype(arr.dtype), init.name))
            changed += 1
    assert changed
    onnx.save(model, str(path))
    reseal(path)
    return path
