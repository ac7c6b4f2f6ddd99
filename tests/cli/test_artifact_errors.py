"""`rlexport validate` / `inspect` on artifacts that are not well-formed: exit 2 and one line
(also under RLEXPORT_DEBUG=1), never exit 1 — exit 1 is kept for a numerical mismatch."""

from __future__ import annotations

import json

import pytest
import torch
from cli_helpers import one_error_line
from tamper import reseal
from torch import nn

from rlexport.export import export_onnx
from rlexport.runtime import load


class Affine(nn.Module):
    out_keys = ("y",)

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2)

    def forward(self, x):
        return self.lin(x)


@pytest.fixture
def artifact(tmp_path):
    torch.manual_seed(0)
    return export_onnx(Affine(), {"x": torch.randn(4, 3)}, tmp_path / "a.onnx")


def _replace_model_bytes(path):
    data = bytearray(path.read_bytes())
    i = data.rfind(b"rlexport")  # metadata text: the model still parses, its digest changes
    data[i] = ord("R")
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("debug", [False, True])
def test_a_model_that_does_not_match_its_manifest_exits_2(run_cli, monkeypatch, artifact, debug):
    if debug:
        monkeypatch.setenv("RLEXPORT_DEBUG", "1")
    _replace_model_bytes(artifact)
    code, out = run_cli("validate", artifact)
    assert code == 2 and "does not match a.json" in out.strip().splitlines()[-1], out
    if not debug:
        one_error_line(code, out, "SHA-256")


def test_golden_beyond_the_tolerance_cap_exits_2(run_cli, artifact):
    index = artifact.parent / "a.golden" / "index.json"
    meta_path = artifact.parent / "a.json"
    data = json.loads(index.read_text())
    data["atol"] = 5.0
    index.write_text(json.dumps(data))
    reseal(artifact)
    assert "sha256" in json.loads(meta_path.read_text())
    one_error_line(*run_cli("validate", artifact), "atol=5.0 must be finite, >= 0 and <= 1.0")


def _rename_case_input(artifact, case_index, old, new):
    index = artifact.parent / "a.golden" / "index.json"
    data = json.loads(index.read_text())
    inputs = data["cases"][case_index]["inputs"]
    if new is not None:
        inputs[new] = inputs[old]
    del inputs[old]
    index.write_text(json.dumps(data))
    reseal(artifact)
    return data["cases"][case_index]["name"]


def test_golden_case_with_an_input_the_graph_lacks_exits_2(run_cli, artifact):
    case = _rename_case_input(artifact, 1, "x", "observation")
    one_error_line(*run_cli("validate", artifact), f"case '{case}' gives input 'observation'")


def test_golden_case_without_an_input_the_graph_needs_exits_2(run_cli, artifact):
    case = _rename_case_input(artifact, 2, "x", None)
    one_error_line(*run_cli("validate", artifact), f"case '{case}' lacks input 'x'")


def test_a_model_file_beyond_the_size_limit_exits_2(run_cli, monkeypatch, artifact):
    size = artifact.stat().st_size
    assert run_cli("validate", artifact)[0] == 0  # within the default limit
    monkeypatch.setattr(load, "MAX_MODEL_BYTES", size - 1)
    one_error_line(*run_cli("validate", artifact), f"model file of {size} bytes is beyond the limit of {size - 1} bytes")
    with pytest.raises(load.ArtifactError, match="beyond the limit"):
        load.load_artifact(artifact, max_model_bytes=16)
