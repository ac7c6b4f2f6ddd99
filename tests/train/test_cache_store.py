"""The graph cache's on-disk format (rlexport.artifact.cache) on stand-in artifact files: round
trip, damaged entries, least-recently-used eviction, two processes storing one key at once."""

import logging
import multiprocessing
import os

import pytest

from rlexport.artifact.cache import CACHE_MAX_MB_ENV, CacheError, GraphCache, cache_key, default_cache_dir, default_max_bytes
from rlexport.artifact.paths import sidecar_paths


def make_artifact(folder, name="graph.onnx", size=1000, fill=b"m"):
    """``graph.onnx`` + ``graph.json`` + ``graph.golden/`` with known bytes (the cache does not parse them)."""
    model, js, golden = sidecar_paths(folder / name)
    folder.mkdir(parents=True, exist_ok=True)
    model.write_bytes(fill * size)
    js.write_text('{"artifact": "%s"}' % name)
    (golden / "cases").mkdir(parents=True)
    (golden / "index.json").write_text("{}")
    (golden / "cases" / "x.bin").write_bytes(b"g" * 10)
    return model


def same_artifact(a, b):
    for pa, pb in zip(sidecar_paths(a), sidecar_paths(b)):
        if pa.is_dir():
            files = sorted(p.relative_to(pa) for p in pa.rglob("*") if p.is_file())
            assert files == sorted(p.relative_to(pb) for p in pb.rglob("*") if p.is_file())
            for f in files:
                assert (pa / f).read_bytes() == (pb / f).read_bytes()
        else:
            assert pa.read_bytes() == pb.read_bytes()


def test_store_then_fetch_copies_the_whole_artifact(tmp_path):
    cache = GraphCache(tmp_path / "c")
    src = make_artifact(tmp_path / "src")
    key = cache_key({"kind": "act", "n": 1})
    assert not cache.fetch(key, tmp_path / "dest" / "graph.onnx")
    assert cache.store(key, src, {"kind": "act"})
    dest = tmp_path / "dest" / "graph.onnx"
    assert cache.fetch(key, dest)
    same_artifact(src, dest)
    assert cache.info()["entries"] == 1 and cache.info()["bytes"] > 1000
    assert cache.clear() == 1 and cache.info()["entries"] == 0


def test_key_is_canonical():
    assert cache_key({"a": 1, "b": [1, 2]}) == cache_key({"b": [1, 2], "a": 1})
    assert cache_key({"a": 1}) != cache_key({"a": 2})


@pytest.mark.parametrize("part", ["model", "json", "golden", "entry"])
def test_a_damaged_entry_is_discarded_with_one_warning(tmp_path, caplog, part):
    cache = GraphCache(tmp_path / "c")
    key = cache_key({"k": part})
    cache.store(key, make_artifact(tmp_path / "src"), {})
    files = cache.graphs / key / "artifact"
    target = {"model": files / "graph.onnx", "json": files / "graph.json",
              "golden": files / "graph.golden" / "cases" / "x.bin", "entry": cache.graphs / key / "entry.json"}[part]
    target.write_bytes(target.read_bytes()[:-1] + b"X")
    dest = tmp_path / "dest" / "graph.onnx"
    with caplog.at_level(logging.WARNING, logger="rlexport.cache"):
        assert not cache.fetch(key, dest)
    assert len(caplog.records) == 1 and "damaged" in caplog.records[0].getMessage()
    assert not dest.exists() and not (cache.graphs / key).exists()  # never used, gone
    assert not dest.parent.exists() or not any(dest.parent.iterdir())  # no staging folder left either


def test_least_recently_used_entries_are_evicted(tmp_path):
    src = make_artifact(tmp_path / "src", size=100_000)
    one = GraphCache(tmp_path / "c").store  # unbounded probe for the size of one entry
    one("probe", src, {})
    entry_bytes = GraphCache(tmp_path / "c").size_bytes()
    GraphCache(tmp_path / "c").clear()
    cache = GraphCache(tmp_path / "c", max_bytes=int(2.5 * entry_bytes))
    cache.store("a", src, {})
    cache.store("b", src, {})
    old = os.stat(cache.graphs / "b" / "entry.json").st_mtime - 100
    for k in ("a", "b"):
        os.utime(cache.graphs / k / "entry.json", (old, old))
    assert cache.fetch("a", tmp_path / "d1" / "graph.onnx")  # a is now the most recently used
    cache.store("c", src, {})  # three do not fit: b, the least recently used, goes
    assert sorted(e.key for e in cache.entries()) == ["a", "c"]
    assert cache.size_bytes() <= cache.max_bytes


def test_bound_and_location_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RLEXPORT_CACHE_DIR", str(tmp_path / "here"))
    assert default_cache_dir() == tmp_path / "here"
    monkeypatch.delenv("RLEXPORT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "rlexport"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == type(tmp_path).home() / ".cache" / "rlexport"
    assert default_max_bytes() == 512 * 2**20
    monkeypatch.setenv(CACHE_MAX_MB_ENV, "1.5")
    assert default_max_bytes() == int(1.5 * 2**20)
    monkeypatch.setenv(CACHE_MAX_MB_ENV, "lots")
    with pytest.raises(CacheError, match="RLEXPORT_CACHE_MAX_MB='lots'"):
        GraphCache()


def test_an_unwritable_cache_costs_a_warning_not_the_run(tmp_path, caplog):
    (tmp_path / "file").write_text("not a folder")
    cache = GraphCache(tmp_path / "file")
    with caplog.at_level(logging.WARNING, logger="rlexport.cache"):
        assert not cache.store("k", make_artifact(tmp_path / "src"), {})
    assert len(caplog.records) == 1 and "cannot be written" in caplog.records[0].getMessage()


def _store_when_released(root, src, barrier, results):
    barrier.wait()
    results.put(GraphCache(root).store("same-key", src, {}))


def test_two_processes_storing_one_key_at_once(tmp_path):
    """Both finish; exactly one entry results (the second rename loses and discards its copy),
    it reads back whole, and no staging folder is left."""
    ctx = multiprocessing.get_context("fork")
    srcs = [make_artifact(tmp_path / f"src{i}", size=2_000_000) for i in range(2)]
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_store_when_released, args=(tmp_path / "c", s, barrier, results)) for s in srcs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    outcomes = sorted(results.get(timeout=5) for _ in procs)
    assert outcomes == [False, True]
    cache = GraphCache(tmp_path / "c")
    assert [e.key for e in cache.entries()] == ["same-key"]
    assert [p.name for p in cache.graphs.iterdir()] == ["same-key"]
    assert cache.fetch("same-key", tmp_path / "dest" / "graph.onnx")
    same_artifact(srcs[0], tmp_path / "dest" / "graph.onnx")


def test_cache_command_info_and_clear(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from rlexport.cli.app import app

    monkeypatch.setenv("RLEXPORT_CACHE_DIR", str(tmp_path / "c"))
    GraphCache().store("k", make_artifact(tmp_path / "src"), {})
    runner = CliRunner()
    res = runner.invoke(app, ["cache", "info"])
    text = " ".join(res.output.split())  # rich may fold the line
    assert res.exit_code == 0 and "1 graphs" in text and "512 MiB" in text, res.output
    res = runner.invoke(app, ["cache", "clear"])
    assert res.exit_code == 0 and "removed 1 graphs" in " ".join(res.output.split()), res.output
    assert GraphCache().entries() == []
