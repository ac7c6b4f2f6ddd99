"""Atomic, pickle-free checkpoints: one safetensors file of tensors plus JSON metadata.

``checkpoints/latest.safetensors`` holds every array the run needs to continue (parameters,
optimizer moments, torch RNG state, running statistics, the current observations, env simulator
states, episode accumulators) and, in the safetensors metadata, a JSON document (global step,
update index, numpy generator state, env counters) and a SHA-256 over all tensor bytes. It is
written to a temporary file in the same folder, fsynced, then ``os.replace``d: a kill at any
moment leaves either the previous or the new checkpoint, never a torn one.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

FORMAT = "rlexport-train-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or inconsistent."""


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(list(t.shape)).encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _as_tensor(v: Any) -> torch.Tensor:
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().contiguous().clone()
    return torch.from_numpy(np.ascontiguousarray(np.asarray(v)).copy())


def save_checkpoint(path: str | Path, tensors: dict[str, Any], meta: dict[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: _as_tensor(v) for k, v in tensors.items()}
    meta = dict(meta, format=FORMAT, version=VERSION)
    header = {"meta": json.dumps(meta), "sha256": _digest(tensors)}
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        save_file(tensors, str(tmp), metadata=header)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        try:
            dfd = os.open(str(path.parent), os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:  # pragma: no cover - some filesystems refuse directory fsync
            pass
    finally:
        if tmp.exists():
            tmp.unlink()


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(tensors, meta)``; ``CheckpointError`` with one line on anything wrong."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        tensors = load_file(str(path))
    except Exception as err:
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable ({type(err).__name__}: {err})") from err
    try:
        meta = json.loads(header["meta"])
        expected = header["sha256"]
    except Exception as err:
        raise CheckpointError(f"checkpoint {path} has no valid rlexport metadata") from err
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {path} is not an rlexport train checkpoint (format {meta.get('format')!r})")
    if _digest(tensors) != expected:
        raise CheckpointError(f"checkpoint {path} is corrupt: its tensor checksum does not match")
    return tensors, meta
