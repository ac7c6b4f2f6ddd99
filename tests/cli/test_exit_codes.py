"""Every usage or input error of the export and validate commands: exit 2 and one line naming the
option, before anything is exported or written."""

from __future__ import annotations

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
                                         (["--atol", "1e300"], "at most")])
def test_validate_tolerance_errors(run_cli, tmp_path, args, needle):
    one_error_line(*run_cli("validate", tmp_path / "any.onnx", *args), needle)


def test_debug_traceback_keeps_exit_2(run_cli, monkeypatch, tmp_path):
    monkeypatch.setenv("RLEXPORT_DEBUG", "1")
    code, out = run_cli("to-onnx", "--preset", "nope", "--loss", "a2c", "-o", tmp_path / "x.onnx")
    assert code == 2 and "Traceback" in out and "preset 'nope' is not known" in out.strip().splitlines()[-1], out
