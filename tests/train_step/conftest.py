"""Shared fixtures: exported artifacts are cached per test session (each export takes seconds)."""

from __future__ import annotations

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))

from losses import MLPActorCriticPPO, ppo_batch  # noqa: E402


@pytest.fixture(scope="session")
def artifact_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("train_step")


@pytest.fixture(scope="session")
def ppo_loss():
    torch.manual_seed(0)
    return MLPActorCriticPPO(shared=True, separate_losses=True)


@pytest.fixture(scope="session")
def exported(artifact_dir, ppo_loss):
    """``exported(optimizer, dtype, **hyperparams) -> path``: the PPO train step, exported once."""
    from rlexport.export.train_step import export_train_step

    cache: dict = {}

    def get(optimizer="adam", dtype=torch.float32, **hp):
        key = (optimizer, dtype, tuple(sorted(hp.items())))
        if key not in cache:
            name = f"{optimizer}_{str(dtype)[6:]}_{len(cache)}.onnx"
            path = artifact_dir / name
            export_train_step(ppo_loss, ppo_batch(6), path, optimizer, dtype=dtype, hyperparams=hp)
            cache[key] = path
        return cache[key]

    return get
