"""Atomic, pickle-free checkpoints: one safetensors file of tensors plus JSON metadata.

``checkpoints/latest.safetensors`` holds every array the run needs to continue (parameters,
optimizer moments, torch RNG state, running statistics, the current observations, env simulator
states, episode accumulators) and, in the safetensors metadata, a JSON document (global step,
update index, numpy generator state, env counters) and a SHA-256 over all tensor bytes. It is
written to a temporary file in the same folder, fsynced, then ``os.replace``d: a kill at any
moment leaves either the previous or the new checkpoint, never a torn one. The checkpoint it
replaces is kept as ``previous.safetensors`` (a hard link to it renamed into place just before,
so ``latest`` never goes missing), so that a latest checkpoint that was damaged afterwards (disk,
a crafted edit) can be passed over for the one before it (``load_run_checkpoint``); on a
filesystem without hard links it is renamed, and a kill between the two renames leaves only
``previous``, which is then what resumes.
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
from safetensors import safe_open

FORMAT = "rlexport-train-checkpoint"
PREVIOUS_NAME = "previous.safetensors"
TEMP_MARK = ".tmp"  # temporary files: "<name>.tmp<pid>"
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


def save_checkpoint(path: str | Path, tensors: dict[str, Any], meta: dict[str, Any], keep_previous: bool = True) -> None:
    """Write ``tensors`` + ``meta`` to ``path`` atomically; the file it replaces becomes
    ``previous.safetensors`` beside it (``keep_previous``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: _as_tensor(v) for k, v in tensors.items()}
    meta = dict(meta, format=FORMAT, version=VERSION)
    header = {"meta": json.dumps(meta), "sha256": _digest(tensors)}
    tmp = path.with_name(path.name + f"{TEMP_MARK}{os.getpid()}")
    try:
        save_file(tensors, str(tmp), metadata=header)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        if keep_previous and path.exists():
            _keep_as_previous(path)
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


def _keep_as_previous(path: Path) -> None:
    """``path`` becomes ``previous.safetensors`` too, while ``path`` itself stays in place (a hard
    link renamed over the old previous), so there is no moment without a latest checkpoint;
    where the filesystem has no hard links, ``path`` is renamed (a kill before the next rename then
    leaves only ``previous``, which ``load_run_checkpoint`` resumes from)."""
    previous = path.with_name(PREVIOUS_NAME)
    linked = previous.with_name(previous.name + f"{TEMP_MARK}{os.getpid()}")
    try:
        linked.unlink(missing_ok=True)
        os.link(path, linked)
    except OSError:
        os.replace(path, previous)
        return
    os.replace(linked, previous)


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(tensors, meta)``; ``CheckpointError`` with one line on anything wrong."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:

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


def load_run_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``load_checkpoint(path)``, or, when that checkpoint is missing or damaged, the previous one
    beside it with ``meta["fallback"]`` = a one-line notice naming both; ``CheckpointError`` (the
    latest's message) when neither loads."""
    path = Path(path)
    try:
        return load_checkpoint(path)
    except CheckpointError as err:
        previous = path.with_name(PREVIOUS_NAME)
        if not previous.is_file():
            raise
        try:
            tensors, meta = load_checkpoint(previous)
        except CheckpointError:
            raise err from None
        meta["fallback"] = (f"{err}; resuming from the previous checkpoint {previous} "
                            f"(step {meta.get('global_step')}) instead")
        return tensors, meta


def remove_stale_temp_files(run_dir: str | Path) -> list[Path]:
    """Delete the temporary files that killed runs left in ``run_dir`` and its ``checkpoints/``
    (``*.tmp<pid>``, ``*.tmp``); call only while holding the run folder's lock."""
    removed = []
    for folder in (Path(run_dir), Path(run_dir) / "checkpoints"):
        if not folder.is_dir():
            continue
        for f in folder.iterdir():
            if f.is_file() and TEMP_MARK in f.name:
                f.unlink(missing_ok=True)
                removed.append(f)
    return removed
