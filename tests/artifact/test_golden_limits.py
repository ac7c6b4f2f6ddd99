"""Golden-sample reads are bounded and tolerances are finite, >= 0 and capped (issue 12)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rlexport.artifact.errors import GoldenError
from rlexport.artifact.golden import GoldenLimits, read_golden, write_golden
from rlexport.artifact.tolerance import MAX_ATOL, MAX_RTOL


def _sample(tmp_path, cases=1):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    root = tmp_path / "m.golden"
    write_golden(root, [(f"c{i}", {"x": x}, {"y": x * 2}) for i in range(cases)], artifact="m.onnx", rtol=1e-4, atol=1e-5)
    return root


def _edit_index(root, change):
    index = json.loads((root / "index.json").read_text())
    change(index)
    (root / "index.json").write_text(json.dumps(index))


def test_round_trip_reads_back_the_values(tmp_path):
    sample = read_golden(_sample(tmp_path))
    assert sample.cases[0].outputs["y"].tolist() == [[0, 2, 4], [6, 8, 10]]


def test_bin_size_is_checked_against_the_shape_before_reading(tmp_path):
    root = _sample(tmp_path)
    (root / "c0" / "x.bin").write_bytes(b"\0" * 20)
    with pytest.raises(GoldenError, match=r"'c0/x.bin' has 20 bytes; float32 \[2, 3\] needs 24"):
        read_golden(root)


def test_a_huge_declared_shape_is_refused_without_reading(tmp_path):
    root = _sample(tmp_path)
    _edit_index(root, lambda i: i["cases"][0]["inputs"]["x"].update(shape=[2**20, 2**20]))
    with pytest.raises(GoldenError, match="more than the limit of"):
        read_golden(root)


@pytest.mark.parametrize("limits,needle", [
    (GoldenLimits(max_cases=2), "3 cases, more than the limit of 2"),
    (GoldenLimits(max_tensor_bytes=16), "declares 24 bytes, more than the limit of 16"),
    (GoldenLimits(max_total_bytes=100), "more than the limit of 100 bytes in all"),
])
def test_limits_are_configurable(tmp_path, limits, needle):
    root = _sample(tmp_path, cases=3)
    read_golden(root)  # within the default limits
    with pytest.raises(GoldenError, match=needle):
        read_golden(root, limits=limits)


@pytest.mark.parametrize("bad", ["NaN", "Infinity", -1e-3, MAX_ATOL * 2, "x"])
def test_bad_per_output_tolerances_are_refused(tmp_path, bad):
    root = _sample(tmp_path)
    _edit_index(root, lambda i: i["cases"][0]["outputs"]["y"].update(tolerance={"rtol": 1e-4, "atol": bad}))
    with pytest.raises(GoldenError, match="atol|tolerance"):
        read_golden(root)


def test_bad_top_level_tolerance_is_refused(tmp_path):
    root = _sample(tmp_path)
    _edit_index(root, lambda i: i.update(rtol=MAX_RTOL * 4))
    with pytest.raises(GoldenError, match=f"rtol=2.0 must be finite, >= 0 and <= {MAX_RTOL}"):
        read_golden(root)


def test_writer_refuses_a_tolerance_beyond_the_cap(tmp_path):
    with pytest.raises(GoldenError, match="atol"):
        write_golden(tmp_path / "g", [("c", {"x": np.zeros(2, np.float32)}, {"y": np.zeros(2, np.float32)})],
                     artifact="m.onnx", rtol=1e-4, atol=float("inf"))


def test_nan_literals_in_index_json_are_refused(tmp_path):
    root = _sample(tmp_path)
    (root / "index.json").write_text((root / "index.json").read_text().replace('"atol": 1e-05', '"atol": NaN'))
    with pytest.raises(GoldenError, match="not valid JSON"):
        read_golden(root)


def test_a_file_outside_the_sample_is_refused(tmp_path):
    root = _sample(tmp_path)
    (tmp_path / "secret.bin").write_bytes(b"\0" * 24)
    _edit_index(root, lambda i: i["cases"][0]["inputs"]["x"].update(file="../secret.bin"))
    with pytest.raises(GoldenError, match="points outside the sample"):
        read_golden(root)
