"""The native CartPole vector env, driven with same-step autoreset, against Gymnasium's own envs."""

import json

import gymnasium as gym
import numpy as np
import pytest

from rlexport.train.config import TrainConfig, make_config
from rlexport.train.envs import EnvError, SameStepCartPole, make_vec_env, resolve_vector_env, restore_vec, snapshot_vec


def _policy(obs, rng):
    """Balances the pole most of the time (so episodes reach the 500-step truncation), random otherwise."""
    greedy = (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(np.int64)
    return np.where(rng.random(len(obs)) < 0.15, rng.integers(0, 2, len(obs)), greedy)


def _sync_to(sync, native_state, steps):
    for i, env in enumerate(sync.envs):
        env.unwrapped.state = np.array(native_state[:, i], np.float64)
        env.unwrapped.steps_beyond_terminated = None
        w = env  # the TimeLimit wrapper holds the step counter
        while not hasattr(w, "_elapsed_steps"):
            w = w.env
        w._elapsed_steps = int(steps[i])


def test_auto_picks_native_for_cartpole_from_64_envs():
    assert resolve_vector_env("CartPole-v1", "auto", 64) == "native"
    assert resolve_vector_env("CartPole-v1", "auto", 4) == "fast"  # native is slower than 4 Python CartPoles
    assert resolve_vector_env("Pendulum-v1", "auto", 64) == "sync"
    assert isinstance(make_vec_env("CartPole-v1", 64, "auto"), SameStepCartPole)
    assert isinstance(make_vec_env("CartPole-v1", 2, "native"), SameStepCartPole)
    assert isinstance(make_vec_env("CartPole-v1", 8, "sync"), gym.vector.SyncVectorEnv)
    with pytest.raises(EnvError, match="--vector-env native: 'Pendulum-v1'"):
        make_vec_env("Pendulum-v1", 2, "native")
    assert TrainConfig.from_dict({"env_id": "CartPole-v1"}).vector_env == "sync"  # runs from before the field


def test_same_step_semantics_match_sync_vector_env():
    """Step for step, the same termination, truncation, reward and final observation as
    ``SyncVectorEnv(SAME_STEP)`` from the same simulator states; ended envs come back reset."""
    E = 3
    native = make_vec_env("CartPole-v1", E, "native")
    sync = make_vec_env("CartPole-v1", E, "sync")
    obs_n, _ = native.reset(seed=3)
    sync.reset(seed=3)
    _sync_to(sync, native.env.state, native.env.steps)
    rng = np.random.default_rng(0)
    ended = {"terminated": 0, "truncated": 0}
    for _ in range(3000):
        a = _policy(obs_n, rng)
        obs_n, r_n, term_n, trunc_n, info_n = native.step(a)
        obs_s, r_s, term_s, trunc_s, info_s = sync.step(a)
        np.testing.assert_array_equal(term_n, term_s)
        np.testing.assert_array_equal(trunc_n, trunc_s)
        np.testing.assert_array_equal(r_n, r_s)
        done = term_n | trunc_n
        np.testing.assert_allclose(obs_n[~done], obs_s[~done], atol=1e-5)
        if done.any():
            np.testing.assert_array_equal(info_n["_final_obs"], info_s["_final_obs"])
            for i in np.nonzero(done)[0]:
                np.testing.assert_allclose(info_n["final_obs"][i], info_s["final_obs"][i], atol=1e-5)
            assert np.all(np.abs(obs_n[done]) <= 0.05) and np.all(native.env.steps[done] == 0)
            ended["terminated"] += int(term_n.sum())
            ended["truncated"] += int(trunc_n.sum())
            _sync_to(sync, native.env.state, native.env.steps)  # the reset states come from different generators
        else:
            assert info_n == {}
    assert ended["terminated"] > 3 and ended["truncated"] >= 1, ended


def test_episodes_are_the_native_envs_own():
    """One env: the same transitions as Gymnasium's next-step ``CartPoleVectorEnv`` with its
    no-op reset steps removed (same start states, drawn from the same generator)."""
    raw = gym.make_vec("CartPole-v1", num_envs=1, vectorization_mode="vector_entry_point")
    ours = make_vec_env("CartPole-v1", 1, "native")
    obs_r, _ = raw.reset(seed=7)
    obs_o, _ = ours.reset(seed=7)
    rng = np.random.default_rng(1)
    compared, resets, pending_reset = 0, 0, False
    while compared < 1500:
        a = _policy(obs_r, rng)
        obs_r, r_r, term_r, trunc_r, _ = raw.step(a)
        if pending_reset:  # the raw env's no-op step: it returns the reset observation
            np.testing.assert_array_equal(obs_r, obs_o)
            pending_reset, resets = False, resets + 1
            continue
        obs_o, r_o, term_o, trunc_o, info_o = ours.step(a)
        np.testing.assert_array_equal(r_r, r_o)
        np.testing.assert_array_equal(term_r, term_o)
        np.testing.assert_array_equal(trunc_r, trunc_o)
        if term_o[0] or trunc_o[0]:
            np.testing.assert_array_equal(info_o["final_obs"], obs_r)
            pending_reset = True
        else:
            np.testing.assert_array_equal(obs_o, obs_r)
        compared += 1
    assert resets >= 3


def test_native_snapshot_restores_exactly():
    a = make_vec_env("CartPole-v1", 3, "native")
    obs, _ = a.reset(seed=1)
    rng = np.random.default_rng(0)
    for _ in range(40):
        obs = a.step(_policy(obs, rng))[0]
    metas, arrays, exact = snapshot_vec(a)
    assert exact
    b = make_vec_env("CartPole-v1", 3, "native")
    b.reset(seed=99)
    restore_vec(b, json.loads(json.dumps(metas)), arrays)
    for _ in range(600):  # terminations, truncations and their resets
        act = _policy(obs, rng)
        ra, rb = a.step(act), b.step(act)
        obs = ra[0]
        for x, y in zip(ra[:4], rb[:4]):
            np.testing.assert_array_equal(x, y)
    with pytest.raises(EnvError, match="another vector env kind"):
        restore_vec(make_vec_env("CartPole-v1", 3, "sync"), metas, arrays)


def test_config_round_trip_keeps_vector_env():
    c = make_config("ppo", "CartPole-v1", vector_env="sync")
    assert TrainConfig.from_dict(json.loads(c.to_json())).vector_env == "sync"
    with pytest.raises(ValueError, match="--vector-env 'turbo'"):
        make_config("ppo", "CartPole-v1", vector_env="turbo")
