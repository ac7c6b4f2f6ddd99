"""``rlexport check-estimator``: exit 0 on a passing export, 1 on a mismatch, 2 on bad input,
no partial file left behind; ``--out`` optional (as the README writes the command)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from cli_helpers import one_error_line


def test_passes_and_writes_onnx_with_sidecars(run_cli, tmp_path):
    code, out = run_cli("check-estimator", "gae", "--out", tmp_path, "--dtype", "float64", "--batch", "3",
                        "--horizon", "16", "--max-steps", "8")
    assert code == 0, out
    assert "max abs err" in out and "OK" in out
    assert "warn" not in out.lower()  # the exporter's warnings are hidden, as in every other command
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gae.golden", "gae.json", "gae.onnx"]  # no temp file left


def test_without_out_uses_a_temporary_directory(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out = run_cli("check-estimator", "td0", "--dtype", "float64", "--horizon", "8", "--max-steps", "4")
    assert code == 0, out
    assert "temporary" in out and list(tmp_path.iterdir()) == []


def test_mismatch_exits_1(run_cli, tmp_path):
    # float32 ORT vs float64 eager with an impossible tolerance
    code, out = run_cli("check-estimator", "td0", "--out", tmp_path, "--batch", "2", "--horizon", "4",
                        "--max-steps", "3", "--rtol", "0", "--atol", "0")
    assert code == 1, out
    assert "MISMATCH" in out


@pytest.mark.parametrize("args,needle", [
    (["bogus"], "not supported"), (["gae", "--dtype", "float16"], "float32 or float64"),
    (["td0", "--horizon", "1"], ">= 2"), (["gae", "--gamma", "nan"], "--gamma nan"), (["gae", "--gamma", "1.5"], "[0, 1]"),
    (["gae", "--lmbda", "-0.1"], "[0, 1]"), (["gae", "--rtol", "-1"], "--rtol -1"), (["gae", "--atol", "nan"], "--atol nan"),
    (["gae", "--atol", "1e300"], "at most"), (["gae", "--horizon", "600", "--max-steps", "9"], "exceeds"),
])
def test_bad_input_exits_2_with_one_line(run_cli, tmp_path, args, needle):
    one_error_line(*run_cli("check-estimator", *args, "--out", tmp_path), needle)
    assert list(tmp_path.iterdir()) == []


def test_console_entry_point_exits_2_also_under_debug(tmp_path):
    cmd = [sys.executable, "-m", "rlexport.cli.app", "check-estimator", "gae", "--gamma", "2", "--out", str(tmp_path)]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 2 and res.stderr.strip().splitlines() == ["error: --gamma 2.0: must be in [0, 1]"], res.stderr
    res = subprocess.run(cmd, capture_output=True, text=True, env={**env, "RLEXPORT_DEBUG": "1"}, timeout=300)
    assert res.returncode == 2 and "Traceback" in res.stderr and "must be in [0, 1]" in res.stderr.splitlines()[-1]
