"""End of a run (exported + validated artifacts, evaluate) and the CLI's bad-input paths."""

import json

import pytest

from cli_helpers import one_error_line, tree_digest


@pytest.fixture(scope="module")
def exported_run(tmp_path_factory):
    from typer.testing import CliRunner

    from rlexport.cli.app import app

    out = tmp_path_factory.mktemp("exp") / "run"
    res = CliRunner().invoke(app, ["train", "--env", "CartPole-v1", "--total-steps", "2048", "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    return out, res.output


def test_run_ends_with_validated_artifacts(exported_run):
    out, text = exported_run
    assert "validation passed" in " ".join(text.split())  # rich wraps at 80 columns; long tmp paths move the break
    doc = json.loads((out / "validation.json").read_text())
    assert doc["passed"], doc
    for name in ("policy", "loss", "train_step"):
        assert (out / "artifacts" / f"{name}.onnx").is_file()
        assert (out / "artifacts" / f"{name}.golden" / "index.json").is_file()
        assert (out / "artifacts" / f"{name}.json").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["global_step"] == 2048 and summary["validation_passed"]


def test_loss_and_train_step_have_a_dynamic_batch(exported_run):
    """PPO's default normalises the advantage; the graphs still take any batch (batch 1: no
    standardisation, TorchRL's rule, in-graph)."""
    import onnx

    out, _ = exported_run
    for name in ("loss", "train_step"):
        model = onnx.load(str(out / "artifacts" / f"{name}.onnx"), load_external_data=False)
        obs = next(i for i in model.graph.input if i.name == "observation")
        assert obs.type.tensor_type.shape.dim[0].dim_param, (name, obs.type.tensor_type.shape)


def test_evaluate_backends_agree(run_cli, exported_run):
    from rlexport.train import evaluate

    out, _ = exported_run
    a = evaluate(out, episodes=3, backend="onnx")
    b = evaluate(out, episodes=3, backend="torch")
    assert a.returns == b.returns
    code, text = run_cli("evaluate", out, "--episodes", "2")
    assert code == 0 and "mean return" in text


def test_bad_inputs(run_cli, tmp_path, exported_run):
    import gymnasium as gym

    one_error_line(*run_cli(*["train", "--env", "NoSuchEnv-v0", "--out", str(tmp_path / "x")]), "unknown Gymnasium")
    assert not (tmp_path / "x").exists()

    gym.register("RlexportTest/MultiBinary-v0", entry_point=_MultiBinaryEnv)
    one_error_line(*run_cli(*["train", "--env", "RlexportTest/MultiBinary-v0", "--out", str(tmp_path / "y")]),
                    "Discrete and flat Box actions")

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    one_error_line(*run_cli(*["train", "--total-steps", "512", "--out", str(blocker / "run")]), "not writable")

    out, _ = exported_run
    before = tree_digest(out)
    one_error_line(*run_cli(*["train", "--out", str(out), "--total-steps", "512"]), "already exists")
    one_error_line(*run_cli(*["train", "--resume", str(out), "--seed", "3"]), "only --total-steps")
    one_error_line(*run_cli(*["evaluate", str(out), "--backend", "tf"]), "--backend")
    assert tree_digest(out) == before

    # a corrupt checkpoint: a copy of the run with flipped bytes
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    ck = bad / "checkpoints" / "latest.safetensors"
    (bad / "checkpoints" / "previous.safetensors").unlink(missing_ok=True)  # no fallback (tested in test_run_folder)
    data = bytearray(ck.read_bytes())
    data[-5] ^= 0xFF
    ck.write_bytes(bytes(data))
    before = tree_digest(bad)
    one_error_line(*run_cli(*["train", "--resume", str(bad)]), "corrupt")
    assert tree_digest(bad) == before
    ck.write_bytes(b"\x00" * 10)
    one_error_line(*run_cli(*["train", "--resume", str(bad)]), "corrupt")
    one_error_line(*run_cli(*["train", "--resume", str(tmp_path / "missing")]), "does not exist")
    one_error_line(*run_cli(*["train", "--algo", "sac"]), "--algo")
    one_error_line(*run_cli("train", "--box-distribution", "tanh_normal", "--total-steps", "512", "--out", tmp_path / "z"),
                   "Box actions only")
    one_error_line(*run_cli("train", "--resume", out, "--env", "Pendulum-v1"), "(got --env)")
    assert not (tmp_path / "z").exists()


def test_help_states_the_defaults_that_run(run_cli):
    from rlexport.train import TrainConfig
    from rlexport.train.demo import DEMO_STEPS

    code, text = run_cli("train", "--help", width=200)
    assert code == 0 and f"{TrainConfig().total_steps} by default" in text and f"{DEMO_STEPS}-step demo" in text, text


class _MultiBinaryEnv(__import__("gymnasium").Env):
    def __init__(self):
        import gymnasium as gym
        import numpy as np

        self.observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
        self.action_space = gym.spaces.MultiBinary(3)  # MultiDiscrete, Dict and Tuple train (composite actions)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}
