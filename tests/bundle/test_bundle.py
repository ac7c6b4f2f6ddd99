"""``rlexport bundle``: the folder a host trains from (docs/bundle.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rlexport.export import read_golden


def _strict_json(path: Path):
    def refuse(name):
        raise AssertionError(f"{path}: non-strict JSON constant {name}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_bundle_layout_and_document(small_bundle):
    cfg, out = small_bundle
    doc = _strict_json(out / "bundle.json")
    assert (doc["format"], doc["version"]) == ("rlexport-bundle", 1)
    assert doc["env"]["observation"]["shape"] == [4] and doc["env"]["action"] == {"type": "discrete", "n": 2, "dtype": "int64"}
    assert doc["rollout"] == {"num_envs": 2, "num_steps": 8, "batch_size": 16, "advantage_shape": "static"}
    assert doc["update"]["minibatch_size"] == 8 and doc["update"]["epochs"] == 2
    assert doc["schedule"]["num_updates"] == 4 and doc["schedule"]["lr"]["kind"] == "linear"
    assert doc["policy"]["noise"]["distribution"] == "uniform"
    for role in ("act", "advantage", "train_step"):
        files = doc["graphs"][role]["onnx"]
        assert (out / files["file"]).is_file() and (out / files["golden"] / "index.json").is_file()
        _strict_json(out / files["meta"])
    # every parameter input of act/advantage is a state tensor of the right shape
    state = read_golden(out / "state").cases[0].inputs
    assert sorted(state) == doc["state"]["names"]
    for role in ("act", "advantage"):
        meta = json.loads((out / doc["graphs"][role]["onnx"]["meta"]).read_text())
        for graph_input, name in doc["graphs"][role]["params"].items():
            assert list(state[name].shape) == meta["inputs"][graph_input]["shape"]
    assert set(doc["state"]["train_step_updates"]) == set(state)
    assert float(state["adam.step"]) == 0.0 and not any(state[k].any() for k in state if k.startswith("adam.exp_avg"))


def test_bundle_state_is_the_configs_agent(small_bundle):
    """The initial parameters are build_agent's for the config's seed (what rlexport train starts from)."""
    from rlexport.train.agent import AgentSpec, build_agent
    from rlexport.train.envs import describe_spaces

    cfg, out = small_bundle
    obs_space, act_space = describe_spaces(cfg.env_id)
    actor, critic = build_agent(AgentSpec(4, act_space, cfg.box_distribution), cfg.hidden, cfg.seed)
    state = read_golden(out / "state").cases[0].inputs
    expected = {f"param.actor_network.{n}": p for n, p in actor.named_parameters()}
    expected.update({f"param.critic_network.{n}": p for n, p in critic.named_parameters()})
    assert set(expected) == {k for k in state if k.startswith("param.")}
    for k, p in expected.items():
        np.testing.assert_array_equal(state[k], p.detach().numpy())


def test_bundle_act_graph_samples_like_torch(small_bundle):
    """act.onnx in ONNX Runtime against torch.distributions' Categorical inverse CDF and the critic."""
    import onnxruntime as ort

    from rlexport.train.agent import AgentSpec, build_agent
    from rlexport.train.envs import describe_spaces

    cfg, out = small_bundle
    doc = json.loads((out / "bundle.json").read_text())
    state = read_golden(out / "state").cases[0].inputs
    _, act_space = describe_spaces(cfg.env_id)
    actor, critic = build_agent(AgentSpec(4, act_space, "normal"), cfg.hidden, cfg.seed)
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((2, 4)).astype(np.float32)
    noise = rng.random(2).astype(np.float32)
    sess = ort.InferenceSession(str(out / "graphs/act.onnx"), providers=["CPUExecutionProvider"])
    feed = {"observation": obs, "noise": noise, **{g: state[s] for g, s in doc["graphs"]["act"]["params"].items()}}
    action, logp, value = sess.run(["action", "sample_log_prob", "state_value"], feed)
    with torch.no_grad():
        logits = actor.module(torch.from_numpy(obs)).double()
        probs = torch.softmax(logits, -1)
        ref_action = (torch.cumsum(probs, -1) < torch.from_numpy(noise).double()[:, None]).sum(-1).clamp(max=1)
        ref_logp = torch.distributions.Categorical(logits=logits).log_prob(ref_action)
        ref_value = critic.module(torch.from_numpy(obs))
    np.testing.assert_array_equal(action, ref_action.numpy())
    np.testing.assert_allclose(logp, ref_logp.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(value, ref_value.numpy(), rtol=1e-5, atol=1e-6)


def test_bundle_train_step_validates_against_torch_optim(small_bundle):
    """The train step, K steps in ONNX Runtime from the bundle's state, against eager torch.optim.Adam."""
    from rlexport.validate import validate_train_step
    from rlexport.train.agent import AgentSpec, build_agent
    from rlexport.train.engines import build_loss
    from rlexport.train.envs import describe_spaces

    cfg, out = small_bundle
    _, act_space = describe_spaces(cfg.env_id)
    actor, critic = build_agent(AgentSpec(4, act_space, "normal"), cfg.hidden, cfg.seed)
    report = validate_train_step(out / "graphs/train_step.onnx", k=5, loss=build_loss(cfg, actor, critic), batch_sizes=[8, 5])
    assert report.passed, report.failures


def test_bundle_from_run_carries_the_checkpoint(tmp_path, small_options):
    """--from RUN: the run's parameters, Adam state, progress and normalisation statistics."""
    from rlexport.train import make_config, train
    from rlexport.train.bundle import make_bundle
    from rlexport.train.checkpoint import load_checkpoint

    cfg = make_config("ppo", "CartPole-v1", engine="torch", export_artifacts=False, normalize_obs=True,
                      out=str(tmp_path / "run"), **{**small_options, "total_steps": 32})
    train(cfg)
    tensors, meta = load_checkpoint(tmp_path / "run/checkpoints/latest.safetensors")
    out = make_bundle(None, tmp_path / "b", from_run=tmp_path / "run")
    doc = _strict_json(out / "bundle.json")
    state = read_golden(out / "state").cases[0].inputs
    assert meta["update"] == 2 and doc["schedule"]["start_update"] == 2 and doc["schedule"]["start_step"] == meta["global_step"]
    assert float(state["adam.step"]) == float(tensors["adam.step"]) > 0
    for k, v in state.items():
        np.testing.assert_array_equal(v, tensors[k].numpy().astype(v.dtype))
    norm = doc["normalization"]["observation"]
    np.testing.assert_array_equal(norm["mean"], tensors["obs_rms.mean"].numpy())
    assert norm["count"] == float(tensors["obs_rms.count"].reshape(-1)[0]) > 1
    assert doc["source"]["run"] == str(tmp_path / "run")


def test_bundle_box_actions_and_normalisation(tmp_path, small_options):
    """Pendulum-v1 (Box actions; PPO's Pendulum defaults normalise observations and rewards)."""
    import onnxruntime as ort

    from rlexport.train.bundle import make_bundle
    from rlexport.train.config import make_config

    cfg = make_config("ppo", "Pendulum-v1", **small_options)
    out = make_bundle(cfg, tmp_path / "b")
    doc = _strict_json(out / "bundle.json")
    assert doc["env"]["action"] == {"type": "box", "shape": [1], "dtype": "float32", "low": [-2.0], "high": [2.0]}
    assert doc["policy"]["distribution"] == "normal" and doc["policy"]["noise"]["distribution"] == "standard_normal"
    obs_norm, rew_norm = doc["normalization"]["observation"], doc["normalization"]["reward"]
    assert obs_norm["mean"] == [0.0] * 3 and obs_norm["var"] == [1.0] * 3 and obs_norm["count"] == 1e-4
    assert rew_norm["returns"] == [0.0] * cfg.num_envs and rew_norm["gamma"] == cfg.gamma
    state = read_golden(out / "state").cases[0].inputs
    sess = ort.InferenceSession(str(out / "graphs/act.onnx"), providers=["CPUExecutionProvider"])
    feed = {g: state[s] for g, s in doc["graphs"]["act"]["params"].items()}
    obs = np.zeros((cfg.num_envs, 3), np.float32)
    zero, _, _ = sess.run(None, {**feed, "observation": obs, "noise": np.zeros((cfg.num_envs, 1), np.float32)})
    one, _, _ = sess.run(None, {**feed, "observation": obs, "noise": np.ones((cfg.num_envs, 1), np.float32)})
    # loc + scale * noise with the initial log-std 0: unit noise moves the action by exactly 1
    np.testing.assert_allclose(one - zero, 1.0, rtol=1e-6)
