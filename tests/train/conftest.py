"""Shared helpers for tests/train: short configs (the CLI tests and their runner live in tests/cli)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture
def short_kwargs():
    return dict(total_steps=1536, export_artifacts=False, checkpoint_every=1)
