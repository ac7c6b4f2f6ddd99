"""``rlexport check-estimator``: exit 0 on a passing export, 1 on a mismatch, 2 on bad input,
no partial file left behind."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from rlexport.cli.app import app
from rlexport.cli.errors import UsageError

runner = CliRunner()


def test_passes_and_writes_onnx(tmp_path):
    res = runner.invoke(app, ["check-estimator", "gae", "--out", str(tmp_path), "--dtype", "float64",
                              "--batch", "3", "--horizon", "16", "--max-steps", "8"])
    assert res.exit_code == 0, res.output
    assert "max abs err" in res.output and "OK" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gae.onnx"]  # no temp file left


def test_mismatch_exits_1(tmp_path):
    # float32 ORT vs float64 eager with an impossible tolerance
    res = runner.invoke(app, ["check-estimator", "td0", "--out", str(tmp_path), "--batch", "2", "--horizon", "4",
                              "--max-steps", "3", "--rtol", "0", "--atol", "0"])
    assert res.exit_code == 1, res.output
    assert "MISMATCH" in res.output


@pytest.mark.parametrize("args", [["bogus"], ["gae", "--dtype", "float16"], ["td0", "--horizon", "1"],
                                  ["gae", "--gamma", "nan"], ["gae", "--horizon", "600", "--max-steps", "9"]])
def test_bad_input_is_usage_error(tmp_path, args):
    res = runner.invoke(app, ["check-estimator", *args, "--out", str(tmp_path)])
    assert isinstance(res.exception, UsageError), res.output
    assert list(tmp_path.iterdir()) == []


def test_console_entry_point_exits_2(tmp_path):
    cmd = [sys.executable, "-c", "from rlexport.cli.app import main; main()", "check-estimator", "bogus", "--out", str(tmp_path)]
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}, timeout=120)
    assert res.returncode == 2 and "not supported" in res.stderr
