"""Helpers shared by the training tests (tests/train) and the ``rlexport train`` CLI tests (tests/cli)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
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


def assert_engines_agree(torch_trainer, onnx_trainer) -> None:
    """Two ``Trainer``s with one seed, torch and ONNX engines: the first rollout (same parameters
    and noise; the graphs agree to float rounding), its GAE and the first update agree."""
    tt, to = torch_trainer, onnx_trainer
    tt.collect(None)
    to.collect(None)
    for k in tt.buf:
        np.testing.assert_allclose(tt.buf[k], to.buf[k], atol=1e-5, err_msg=k)
    ft, fo = tt.flat_batch(), to.flat_batch()
    np.testing.assert_allclose(ft["advantage"], fo["advantage"], atol=1e-4)
    tt.learn()
    to.learn()
    st, so = tt.engine.state(), to.engine.state()
    for k in st:
        if k.startswith("param."):
            np.testing.assert_allclose(st[k].numpy(), so[k].numpy(), atol=2e-4, err_msg=k)
