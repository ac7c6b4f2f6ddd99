"""The one reader of an ``rlexport train`` run folder: its ``config.json`` and its checkpoint.

``--resume`` (``loop``), ``rlexport bundle --from`` (``bundle``), ``rlexport evaluate``
(``evaluation``) and the export commands' ``--checkpoint RUN`` (``rlexport.models.factory``)
all read a run through ``read_run_config`` / ``read_run``; each prefixes the one-line
``RunFolderError`` with its own option name.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .checkpoint import CheckpointError, load_checkpoint, load_run_checkpoint
from .config import TrainConfig

#: Where ``rlexport train`` keeps a run's checkpoint, relative to the run folder.
CHECKPOINT = Path("checkpoints") / "latest.safetensors"
CONFIG_NAME = "config.json"


class RunFolderError(ValueError):
    """A run folder (or checkpoint path) that is not a readable ``rlexport train`` run: one line."""


@dataclass
class RunFolder:
    path: Path  # the run folder
    config: TrainConfig
    checkpoint: Path  # the file the tensors were read from asked for (``meta["fallback"]``: the previous one was used)
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]


def run_and_checkpoint(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(run folder, checkpoint file)`` for a run folder or a ``.safetensors`` file in ``RUN/checkpoints/``."""
    path = Path(path)
    if path.suffix == ".safetensors" and not path.is_dir():
        return path.parent.parent, path
    return path, path / CHECKPOINT


def read_run_config(run: str | os.PathLike) -> TrainConfig:
    """The validated ``TrainConfig`` of the run folder ``run``, or ``RunFolderError``."""
    run = Path(run)
    cfg_path = run / CONFIG_NAME
    if not run.is_dir():
        raise RunFolderError(f"run folder {run} does not exist; no config.json there")
    try:
        cfg = TrainConfig.from_dict(json.loads(cfg_path.read_text()))
        cfg.validate()
    except FileNotFoundError:
        raise RunFolderError(f"{run} has no config.json ({cfg_path} is missing); not an rlexport train run folder") from None
    except (ValueError, TypeError, AttributeError) as err:  # bad JSON, unknown field, wrong type or value
        raise RunFolderError(f"{cfg_path} is not a valid config ({err})") from None
    return cfg


def read_run(path: str | os.PathLike, *, fallback: bool = True) -> RunFolder:
    """The config and checkpoint of a run (``path``: its folder, or a ``.safetensors`` file in
    ``RUN/checkpoints/``, which is then read as it is). From a folder, ``fallback`` reads the
    previous checkpoint when the latest is missing or damaged (``load_run_checkpoint``:
    ``meta["fallback"]`` holds the notice). ``RunFolderError`` with one line otherwise."""
    run, ckpt = run_and_checkpoint(path)
    cfg = read_run_config(run)
    explicit = Path(path).suffix == ".safetensors"
    try:
        tensors, meta = load_run_checkpoint(ckpt) if fallback and not explicit else load_checkpoint(ckpt)
    except CheckpointError as err:
        raise RunFolderError(str(err)) from None
    return RunFolder(run, cfg, ckpt, tensors, meta)
