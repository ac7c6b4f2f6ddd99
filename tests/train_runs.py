"""Helpers shared by the training tests (tests/train) and the ``rlexport train`` CLI tests (tests/cli)."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from rlexport.train.checkpoint import load_checkpoint

CKPT = "checkpoints/latest.safetensors"


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def assert_same_checkpoints(a: Path, b: Path) -> None:
    """Two run folders ended in the same state: checkpoint tensors bit for bit, step, numpy generator."""
    ta, ma = load_checkpoint(Path(a) / CKPT)
    tb, mb = load_checkpoint(Path(b) / CKPT)
    assert ma["global_step"] == mb["global_step"]
    assert ma["rng_numpy"] == mb["rng_numpy"]
    assert set(ta) == set(tb)
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k
