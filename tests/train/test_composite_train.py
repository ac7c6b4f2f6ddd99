"""``rlexport train`` with composite action spaces (MultiDiscrete, Dict, Tuple) on the
``rlexport/*`` CartPole variants: the packed action layout against Gymnasium's spaces, a run
that learns (return against a random policy on the same env) on each engine, its policy and
train step exported and validated, an exact resume, and the refusals of unsupported spaces."""

from __future__ import annotations

import csv

import gymnasium as gym
import numpy as np
import pytest

from rlexport.train import make_config, train
from rlexport.train.agent import AgentSpec
from rlexport.train.envs import EnvError, check_spaces
from rlexport.train.evaluation import evaluate
from rlexport.train.loop import Trainer
from train_runs import assert_engines_agree, assert_same_checkpoints

ENVS = ("rlexport/MultiHeadCartPole-v0", "rlexport/TupleCartPole-v0", "rlexport/MultiDiscreteCartPole-v0")


def _random_return(env_id: str, episodes: int = 30) -> float:
    env = gym.make(env_id)
    env.action_space.seed(0)
    total = []
    for i in range(episodes):
        env.reset(seed=1000 + i)
        ret, done = 0.0, False
        while not done:
            _, r, term, trunc, _ = env.step(env.action_space.sample())
            ret, done = ret + r, term or trunc
        total.append(ret)
    env.close()
    return float(np.mean(total))


def _last_returns(run, n=20) -> float:
    with open(run / "episodes.csv", newline="") as f:
        returns = [float(r["return"]) for r in csv.DictReader(f)]
    return float(np.mean(returns[-n:]))


@pytest.mark.parametrize("env_id", ENVS)
def test_packed_actions_become_the_envs_own_actions(env_id):
    env = gym.make(env_id)
    spec = AgentSpec(4, env.action_space, "normal")
    assert spec.composite and spec.action_names == [f"action_{h.name}" for h in spec.heads]
    rng = np.random.default_rng(0)
    loss_actions = spec.example_actions(rng, 5)
    packed = np.concatenate([a[:, None].astype(np.float32) if a.ndim == 1 else a for a in loss_actions.values()], -1)
    for name, value in spec.split_actions(packed).items():  # the loss's per-head inputs, dtypes included
        assert value.dtype == loss_actions[name].dtype and np.array_equal(value, loss_actions[name]), name
    vec = gym.vector.SyncVectorEnv([lambda: gym.make(env_id)] * 5)
    batched = spec.env_action(np.where(spec.discrete_columns, packed, packed * 3.0))  # Box values are clipped
    assert vec.action_space.contains(batched)
    for i in range(5):
        assert env.action_space.contains(spec.single_env_action(packed[i]))
    vec.close()
    env.close()


def test_unsupported_composite_spaces_are_refused_by_name():
    obs = gym.spaces.Box(-1, 1, (3,))
    nested = gym.spaces.Dict({"a": gym.spaces.Tuple((gym.spaces.Discrete(2),))})
    with pytest.raises(EnvError, match="head 'a'.*not nested"):
        check_spaces("x", obs, nested)
    with pytest.raises(EnvError, match="'my-key' must be a Python identifier"):
        check_spaces("x", obs, gym.spaces.Dict({"my-key": gym.spaces.Discrete(2)}))
    with pytest.raises(EnvError, match="must be bounded.*head 1"):
        check_spaces("x", obs, gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Box(-np.inf, np.inf, (1,)))))
    with pytest.raises(EnvError, match="start 0"):
        check_spaces("x", obs, gym.spaces.MultiDiscrete([2, 3], start=[1, 0]))


def test_composite_ppo_learns_on_the_torch_engine_and_its_artifacts_validate(tmp_path):
    env_id = "rlexport/MultiHeadCartPole-v0"
    run = tmp_path / "run"
    res = train(make_config("ppo", env_id, total_steps=8192, learning_rate=1e-3, out=str(run)))
    assert res.validation_passed, (run / "validation.json").read_text()
    random = _random_return(env_id)
    assert _last_returns(run) > 2 * random, (_last_returns(run), random)
    # the exported greedy policy drives the env through the packed layout
    result = evaluate(run, episodes=3, backend="onnx")
    assert result.mean_return > random


def test_composite_onnx_engine_matches_torch_and_learns(tmp_path):
    """Same seed: the first rollout and update agree across engines; then the ONNX run learns
    and its artifacts validate."""
    env_id = "rlexport/MultiDiscreteCartPole-v0"
    cfg_t = make_config("ppo", env_id, total_steps=512, out=str(tmp_path / "t"), export_artifacts=False)
    (tmp_path / "t").mkdir()
    (tmp_path / "o").mkdir()
    cfg_o = make_config("ppo", env_id, total_steps=512, out=str(tmp_path / "o"), engine="onnx", export_artifacts=False)
    tt, to = Trainer(cfg_t, tmp_path / "t"), Trainer(cfg_o, tmp_path / "o")
    assert_engines_agree(tt, to)
    tt.close()
    to.close()
    run = tmp_path / "run"
    res = train(make_config("ppo", env_id, total_steps=8192, learning_rate=1e-3, out=str(run), engine="onnx"))
    assert res.validation_passed, (run / "validation.json").read_text()
    assert _last_returns(run) > 2 * _random_return(env_id)


def test_composite_resume_is_exact(tmp_path, short_kwargs):
    from rlexport.train import TrainInterrupted

    env_id = "rlexport/TupleCartPole-v0"
    a, b = tmp_path / "a", tmp_path / "b"
    train(make_config("ppo", env_id, out=str(a), **short_kwargs))
    with pytest.raises(TrainInterrupted):
        train(make_config("ppo", env_id, out=str(b), **short_kwargs), stop_after_updates=1)
    train(resume=b)
    assert_same_checkpoints(a, b)
    assert (a / "episodes.csv").read_text() == (b / "episodes.csv").read_text()
