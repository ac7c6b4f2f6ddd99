"""``rlexport bundle`` on the command line: a bundle whose three graphs ``rlexport validate``
passes, and bad input (one line, exit 2, nothing written)."""

from __future__ import annotations

import json

import pytest


def test_bundle_command_writes_graphs_that_validate(run_cli, tmp_path):
    out = tmp_path / "b"
    code, text = run_cli("bundle", "--env", "CartPole-v1", "--algo", "ppo", "--num-envs", "2", "--num-steps", "8",
                         "--num-minibatches", "2", "--hidden", "16,16", "--total-steps", "64", "-o", out)
    assert code == 0, text
    doc = json.loads((out / "bundle.json").read_text())
    assert doc["rollout"]["num_envs"] == 2 and doc["hyperparams"]["hidden"] == [16, 16]
    for role in ("act", "advantage", "train_step"):
        code, text = run_cli("validate", out / doc["graphs"][role]["onnx"]["file"], "--backend", "onnx-cpu")
        assert code == 0, f"{role}: {text}"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--engine", "torch"], "does not take --engine"),
        (["--resume", "somewhere"], "does not take --resume"),
        (["--env", "NoSuchEnv-v0"], "unknown Gymnasium environment id 'NoSuchEnv-v0'"),
        (["--num-envs", "0"], "--num-envs must be >= 1"),
        (["--hidden", "a,b"], "--hidden must be comma-separated"),
        (["--bogus"], "No such option"),
        (["--from", "no/such/run"], "no config.json"),
        (["--from", "no/such/run", "--seed", "3"], "training options cannot be given with it"),
    ],
)
def test_bundle_bad_input_exits_2(run_cli, tmp_path, args, message):
    out = tmp_path / "b"
    code, text = run_cli("bundle", "-o", out, *args)
    assert code == 2, text
    assert message in text
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == []


def test_bundle_refuses_a_non_empty_folder(run_cli, tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "keep.txt").write_text("x")
    code, text = run_cli("bundle", "-o", tmp_path / "b", "--num-envs", "2")
    assert code == 2 and "exists and is not an empty folder" in text
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["keep.txt"]
