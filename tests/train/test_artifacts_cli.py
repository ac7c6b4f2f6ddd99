"""End of a run (exported + validated artifacts, evaluate) and the CLI's bad-input paths."""

import json

import pytest

from conftest import run_cli, tree_digest


@pytest.fixture(scope="module")
def exported_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("exp") / "run"
    code, text = run_cli(["train", "--env", "CartPole-v1", "--total-steps", "2048", "--out", str(out), "--quiet"])
    assert code == 0, text
    return out, text


def test_run_ends_with_validated_artifacts(exported_run):
    out, text = exported_run
    assert "validation passed" in text
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


def test_evaluate_backends_agree(exported_run):
    from rlexport.train import evaluate

    out, _ = exported_run
    a = evaluate(out, episodes=3, backend="onnx")
    b = evaluate(out, episodes=3, backend="torch")
    assert a.returns == b.returns
    code, text = run_cli(["evaluate", str(out), "--episodes", "2"])
    assert code == 0 and "mean return" in text


def _one_error_line(code, text, needle):
    assert code == 2, text
    lines = [l for l in text.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], text


def test_bad_inputs(tmp_path, exported_run):
    import gymnasium as gym

    _one_error_line(*run_cli(["train", "--env", "NoSuchEnv-v0", "--out", str(tmp_path / "x")]), "unknown Gymnasium")
    assert not (tmp_path / "x").exists()

    gym.register("RlexportTest/MultiDiscrete-v0", entry_point=_MultiDiscreteEnv)
    _one_error_line(*run_cli(["train", "--env", "RlexportTest/MultiDiscrete-v0", "--out", str(tmp_path / "y")]),
                    "Discrete and flat Box actions")

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    _one_error_line(*run_cli(["train", "--total-steps", "512", "--out", str(blocker / "run")]), "not writable")

    out, _ = exported_run
    before = tree_digest(out)
    _one_error_line(*run_cli(["train", "--out", str(out), "--total-steps", "512"]), "already exists")
    _one_error_line(*run_cli(["train", "--resume", str(out), "--seed", "3"]), "only --total-steps and --export/--no-export")
    _one_error_line(*run_cli(["evaluate", str(out), "--backend", "tf"]), "--backend")
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
    _one_error_line(*run_cli(["train", "--resume", str(bad)]), "corrupt")
    assert tree_digest(bad) == before
    ck.write_bytes(b"\x00" * 10)
    _one_error_line(*run_cli(["train", "--resume", str(bad)]), "corrupt")
    _one_error_line(*run_cli(["train", "--resume", str(tmp_path / "missing")]), "does not exist")
    _one_error_line(*run_cli(["train", "--algo", "sac"]), "--algo")


class _MultiDiscreteEnv(__import__("gymnasium").Env):
    def __init__(self):
        import gymnasium as gym
        import numpy as np

        self.observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
        self.action_space = gym.spaces.MultiDiscrete([2, 3])

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}
