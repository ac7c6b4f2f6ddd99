"""Atomic artifacts: one commit order with the manifest last, digests checked on load, a kill
between any two commit steps never yields a mixed artifact that validates, stale staging removed,
bad output paths refused before any work (issue 12)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper

from rlexport.artifact import paths
from rlexport.artifact.errors import ArtifactError
from rlexport.artifact.paths import COMMIT_STEPS, check_output_path
from rlexport.export import export_onnx
from rlexport.export.onnx import save_onnx
from rlexport.export.plan import GoldenSpec
from rlexport.export.write import write_artifact
from rlexport.runtime.check import check_against_golden
from rlexport.runtime.load import load_artifact


def _scale_model(factor: float):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch"])
    c = helper.make_tensor("c", TensorProto.FLOAT, [], [factor])
    graph = helper.make_graph([helper.make_node("Mul", ["x", "c"], ["y"])], "scale", [x], [y], [c])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _write(path, factor: float) -> None:
    """A complete artifact ``y = factor * x`` through the one writer (verified in ONNX Runtime)."""
    x = torch.arange(4, dtype=torch.float32)
    spec = GoldenSpec("forward", [("b4", {"x": x}, {"y": factor * x})], 1e-4, 1e-5)
    meta = {"format": "onnx", "kind": "forward", "dtype": "float32", "input_names": ["x"], "out_keys": ["y"]}
    write_artifact(path, meta, lambda p: save_onnx(_scale_model(factor), meta, p), spec)


class Killed(BaseException):
    pass


@pytest.mark.parametrize("step", COMMIT_STEPS)
def test_a_kill_between_commit_steps_never_validates_a_mixed_artifact(tmp_path, monkeypatch, step):
    path = tmp_path / "m.onnx"
    _write(path, 2.0)

    def kill(name):
        if name == step:
            raise Killed(name)

    monkeypatch.setattr(paths, "COMMIT_HOOK", kill)
    with pytest.raises(Killed):
        _write(path, 3.0)
    monkeypatch.setattr(paths, "COMMIT_HOOK", None)
    assert list(tmp_path.glob(".m.onnx.*.tmp")), "a killed commit leaves its staging directory"
    try:
        report = check_against_golden(path, ["onnx-cpu"])
    except ArtifactError as err:  # the manifest names other files: refused, never compared
        assert step != "manifest", err
        assert "SHA-256" in str(err) or "golden sample" in str(err)
    else:
        assert report.passed  # what it finds is one whole artifact: the old one or the new one
        want = 3.0 if step == "manifest" else 2.0
        assert json.loads((tmp_path / "m.json").read_text())["sha256"] == load_artifact(path).meta["sha256"]
        assert load_artifact(path).runner("onnx-cpu")({"x": np.ones(1, np.float32)})["y"][0] == want


def test_the_next_export_removes_stale_staging(tmp_path, monkeypatch):
    path = tmp_path / "m.onnx"
    stale = tmp_path / ".m.onnx.999999999.abc.tmp"  # a pid that is not running
    stale.mkdir()
    (stale / "m.onnx").write_bytes(b"partial")
    _write(path, 2.0)
    assert not stale.exists() and not list(tmp_path.glob(".m.onnx.*.tmp"))
    assert check_against_golden(path, ["onnx-cpu"]).passed


def test_json_records_the_digests_and_a_replaced_golden_is_refused(tmp_path):
    path = tmp_path / "m.onnx"
    _write(path, 2.0)
    meta = json.loads((tmp_path / "m.json").read_text())
    assert set(meta["sha256"]) == {"model", "golden_index"} and len(meta["sha256"]["model"]) == 64
    index = tmp_path / "m.golden" / "index.json"
    index.write_text(index.read_text().replace('"atol": 1e-05', '"atol": 0.5'))
    with pytest.raises(ArtifactError, match="golden sample's index.json does not match m.json"):
        load_artifact(path)


def test_format_in_json_must_agree_with_the_file(tmp_path):
    path = tmp_path / "m.onnx"
    _write(path, 2.0)
    meta = json.loads((tmp_path / "m.json").read_text())
    (tmp_path / "m.json").write_text(json.dumps({**meta, "format": "pt2"}))
    with pytest.raises(ArtifactError, match="says format 'pt2' but m.onnx is a onnx artifact"):
        load_artifact(path)


def test_bad_output_paths_are_refused_before_exporting(tmp_path):
    (tmp_path / "dir.onnx").mkdir()
    (tmp_path / "file").write_text("x")
    for bad, needle in ((tmp_path / "dir.onnx", "is a directory"), (tmp_path / "file" / "m.onnx", "is a file, not a directory")):
        with pytest.raises(ArtifactError, match=needle):
            check_output_path(bad)
        with pytest.raises(ArtifactError, match=needle):  # the exporter checks first: nothing traced
            export_onnx(object(), {}, bad)  # type: ignore[arg-type]
