"""Puts ``tests/`` on ``sys.path`` (pytest inserts a conftest's directory), so every test module
imports the one shared helper as ``import helpers``."""

import pytest


@pytest.fixture(autouse=True)
def _graph_cache_in_tmp(tmp_path_factory, monkeypatch):
    """Every test (and the CLI processes it starts) gets its own empty graph cache, never the
    user's ``~/.cache/rlexport``."""
    monkeypatch.setenv("RLEXPORT_CACHE_DIR", str(tmp_path_factory.mktemp("graph-cache")))
