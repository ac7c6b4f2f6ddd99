"""A small bundle (and its options) for the bundle tests."""

import os

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# small and quick to export: 2 envs x 8 steps, 2 epochs x 2 minibatches
SMALL = dict(num_envs=2, num_steps=8, update_epochs=2, num_minibatches=2, total_steps=64, seed=5, hidden=(16, 16))


@pytest.fixture
def small_options():
    return dict(SMALL)


@pytest.fixture(scope="session")
def small_bundle(tmp_path_factory):
    """``make_bundle`` of ``SMALL`` PPO on CartPole-v1: ``(config, bundle folder)``."""
    from rlexport.train.bundle import make_bundle
    from rlexport.train.config import make_config

    cfg = make_config("ppo", "CartPole-v1", **SMALL)
    out = tmp_path_factory.mktemp("bundle") / "b"
    make_bundle(cfg, out)
    return cfg, out
