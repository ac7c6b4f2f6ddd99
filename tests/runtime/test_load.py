"""Loading artifacts runs no code from them: .pt2 pickles are checked before torch.export.load."""

from __future__ import annotations

import io
import os
import pickle
import zipfile

import pytest
import torch
from torch import nn

from rlexport.artifact.errors import ArtifactError
from rlexport.export import export_program
from rlexport.runtime.load import check_pt2_archive, detect_format, load_artifact


class Scale(nn.Module):
    out_keys = ("y",)

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([1.5, -2.0]))

    def forward(self, x):
        return x * self.w


class Evil:
    def __reduce__(self):
        return (os.system, ("echo should never run",))


def _rewrite_zip(src, dst, replace):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            zout.writestr(item, replace(item.filename, zin.read(item.filename)))


def test_a_plain_pt2_loads_and_runs(tmp_path):
    path = tmp_path / "s.pt2"
    export_program(Scale(), {"x": torch.ones(3, 2)}, path)
    check_pt2_archive(path)
    out = load_artifact(path).runner("pt2")({"x": torch.ones(1, 2).numpy()})
    assert out["y"].tolist() == [[1.5, -2.0]]


def test_a_pt2_with_a_pickle_beyond_tensors_is_refused(tmp_path):
    path = tmp_path / "s.pt2"
    export_program(Scale(), {"x": torch.ones(3, 2)}, path)
    evil = tmp_path / "evil.pt2"

    def inject(name, data):
        if name.endswith("sample_inputs/model.pt"):  # a nested torch.save archive
            buf = io.BytesIO()
            with zipfile.ZipFile(io.BytesIO(data)) as inner, zipfile.ZipFile(buf, "w") as out:
                for sub in inner.namelist():
                    out.writestr(sub, pickle.dumps(Evil()) if sub.endswith(".pkl") else inner.read(sub))
            return buf.getvalue()
        return data

    _rewrite_zip(path, evil, inject)
    with pytest.raises(ArtifactError, match=r"pickle data that would load posix.system|os.system"):
        load_artifact(evil)


def test_content_decides_the_format(tmp_path):
    path = tmp_path / "s.pt2"
    export_program(Scale(), {"x": torch.ones(3, 2)}, path)
    assert detect_format(path) == "pt2"
    fake = tmp_path / "zip.onnx"
    fake.write_bytes(path.read_bytes())
    with pytest.raises(ArtifactError, match="has the .onnx suffix but is a zip archive"):
        detect_format(fake)
    junk = tmp_path / "junk.pt2"
    junk.write_bytes(b"not an artifact")
    with pytest.raises(ArtifactError, match="is not an ONNX model"):
        load_artifact(junk)
