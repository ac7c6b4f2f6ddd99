"""Puts ``tests/`` on ``sys.path`` (pytest inserts a conftest's directory), so every test module
imports the one shared helper as ``import helpers``."""

import pytest


@pytest.fixture(scope="session")
def _session_graph_cache(tmp_path_factory):
    """One graph cache per test process, in pytest's temporary folder."""
    return tmp_path_factory.mktemp("graph-cache")


@pytest.fixture(autouse=True)
def _graph_cache_in_tmp(_session_graph_cache, monkeypatch):
    """Every test (and the CLI processes it starts) uses the session's graph cache, never the
    user's ``~/.cache/rlexport``: the ONNX-engine runs of one configuration export once per test
    process. Tests of the cache itself (``tests/train/test_cache*.py``) pass their own
    ``GraphCache`` or cache folder, so what they count starts empty."""
    monkeypatch.setenv("RLEXPORT_CACHE_DIR", str(_session_graph_cache))
