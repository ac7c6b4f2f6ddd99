"""Every usage or input error of the export and validate commands: exit 2 and one line naming the
option, before anything is exported or written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import onnx
import pytest
from cli_helpers import one_error_line

EXPORT_ERRORS = [
    (["--opset", "17"], "--opset 17"),
    (["--opset", "5"], "--opset 5"),
    (["--opset", "99"], "--opset 99"),
    (["--format", "pt2", "--opset", "20"], "drop it for --format pt2"),
    (["--clip-epsilon", "-1"], "--clip-epsilon -1"),
    (["--entropy-coeff", "nan"], "--entropy-coeff nan"),
    (["--estimator", "gae", "--gamma", "1.5"], "--gamma 1.5"),
    (["--estimator", "gae", "--lmbda", "-0.5"], "--lmbda -0.5"),
    (["--format", "zip"], "--format 'zip'"),
    (["--dtype", "float16"], "float32 or float64"),
]


@pytest.mark.parametrize("args,needle", EXPORT_ERRORS)
def test_export_option_errors(run_cli, tmp_path, args, needle):
    out = tmp_path / "x.onnx"
    one_error_line(*run_cli("export", "--preset", "cartpole", "--loss", "clip-ppo", *args, "-o", out), needle)
    assert list(tmp_path.iterdir()) == []


def test_output_path_refused_before_exporting(run_cli, tmp_path):
    (tmp_path / "dir").mkdir()
    one_error_line(*run_cli("to-onnx", "--preset", "cartpole", "--loss", "a2c", "-o", tmp_path / "dir"), "is a directory")
    (tmp_path / "file").write_text("x")
    one_error_line(*run_cli("to-onnx", "--preset", "cartpole", "--loss", "a2c", "-o", tmp_path / "file" / "a.onnx"),
                   "is a file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "file"] and not any((tmp_path / "dir").iterdir())


@pytest.mark.parametrize("args,needle", [(["--rtol", "-1"], "--rtol -1"), (["--atol", "nan"], "--atol nan"),
                                         (["--atol", "1e300"], "at most"), (["--rtol", "0.7"], "at most 0.5")])
def test_validate_tolerance_errors(run_cli, tmp_path, args, needle):
    one_error_line(*run_cli("validate", tmp_path / "any.onnx", *args), needle)


def test_debug_traceback_keeps_exit_2(run_cli, monkeypatch, tmp_path):
    monkeypatch.setenv("RLEXPORT_DEBUG", "1")
    code, out = run_cli("to-onnx", "--preset", "nope", "--loss", "a2c", "-o", tmp_path / "x.onnx")
    assert code == 2 and "Traceback" in out and "preset 'nope' is not known" in out.strip().splitlines()[-1], out


def test_opset_in_range_is_honoured(run_cli, tmp_path):
    path = tmp_path / "a2c.onnx"
    code, out = run_cli("to-onnx", "--preset", "cartpole", "--loss", "a2c", "--opset", "21", "--batch", "4", "-o", path)
    assert code == 0, out
    assert [o.version for o in onnx.load(str(path)).opset_import if o.domain in ("", "ai.onnx")] == [21]


def test_sigterm_during_export_exits_130_with_one_line_and_no_file(tmp_path):
    """SIGTERM once the export is under way: as soon as its staging directory appears (the
    model is being written into it), whatever the machine's speed."""
    cmd = [sys.executable, "-m", "rlexport.cli.app", "to-onnx", "--preset", "cartpole", "--loss", "a2c",
           "--estimator", "gae", "-o", str(tmp_path / "x.onnx")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 300
    while not any(p.name.startswith(".x.onnx.") for p in tmp_path.iterdir()):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert [line for line in err.splitlines() if line.strip()] == [
        "terminated (SIGTERM): stopped, nothing half-written"], err
    assert list(tmp_path.iterdir()) == []  # neither the artifact nor a staging directory
