"""`export`/`to-onnx --checkpoint RUN`: a short `rlexport train` run's trained networks, exported in
another format and dtype from the run folder or its safetensors checkpoint, then validated."""

from __future__ import annotations

import pytest
import torch
from cli_helpers import one_error_line

from rlexport.models.factory import load_run
from rlexport.train.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from typer.testing import CliRunner

    from rlexport.cli.app import app

    run = tmp_path_factory.mktemp("train") / "run"
    res = CliRunner().invoke(app, ["train", "--total-steps", "1024", "--engine", "torch", "--no-export", "--quiet",
                                   "--out", str(run)])
    assert res.exit_code == 0, res.output
    return run


def test_load_run_holds_the_checkpoints_parameters(run_dir):
    tensors, _ = load_checkpoint(run_dir / "checkpoints" / "latest.safetensors")
    networks = load_run(run_dir)
    for prefix, module in (("param.actor_network.", networks.actor), ("param.critic_network.", networks.critic)):
        state = module.state_dict()
        assert state and all(torch.equal(v, tensors[prefix + k]) for k, v in state.items())


def test_export_pt2_float64_from_the_run_folder(run_cli, run_dir, tmp_path):
    path = tmp_path / "ppo.pt2"
    code, out = run_cli("export", "--format", "pt2", "--checkpoint", run_dir, "--loss", "clip-ppo", "--dtype", "float64",
                        "-o", path)
    assert code == 0, out
    code, out = run_cli("validate", path)
    assert code == 0 and "float64" in out, out


def test_to_onnx_from_the_checkpoint_file(run_cli, run_dir, tmp_path):
    path = tmp_path / "a2c.onnx"
    code, out = run_cli("to-onnx", "--checkpoint", run_dir / "checkpoints" / "latest.safetensors", "--loss", "a2c",
                        "--batch", "4", "-o", path)
    assert code == 0, out
    assert run_cli("validate", path)[0] == 0


def test_bad_run_checkpoints_exit_2(run_cli, run_dir, tmp_path):
    one_error_line(*run_cli("to-onnx", "--preset", "cartpole", "--checkpoint", run_dir, "--loss", "a2c",
                            "-o", tmp_path / "x.onnx"), "drop --preset")
    (tmp_path / "empty").mkdir()
    one_error_line(*run_cli("to-onnx", "--checkpoint", tmp_path / "empty", "--loss", "a2c", "-o", tmp_path / "x.onnx"),
                   "config.json is missing")
    one_error_line(*run_cli("to-onnx", "--loss", "a2c", "-o", tmp_path / "x.onnx"), "name a model preset")
    assert not (tmp_path / "x.onnx").exists()
