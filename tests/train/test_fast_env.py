"""rlexport's CartPoleVec against Gymnasium's own CartPole-v1 environments, bit for bit."""

import gymnasium as gym
import torch
import numpy as np
import pytest

from rlexport.train.envs import CartPoleVec, EnvError, make_vec_env, resolve_vector_env, restore_vec, snapshot_vec


def _policy(obs, rng, eps=0.12):
    """Balances the pole most of the time (so episodes reach the time limit), random otherwise."""
    greedy = (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(np.int64)
    return np.where(rng.random(len(obs)) < eps, rng.integers(0, 2, len(obs)), greedy)


class _GymReference:
    """4 ``gym.make("CartPole-v1")`` envs seeded ``seed + i``, reset as soon as an episode ends."""

    def __init__(self, n, seed, env_id="CartPole-v1"):
        self.envs = [gym.make(env_id) for _ in range(n)]
        self.obs = np.stack([e.reset(seed=seed + i)[0] for i, e in enumerate(self.envs)])

    def step(self, actions):
        out, final = [], {}
        for i, (env, a) in enumerate(zip(self.envs, actions.tolist())):
            o, r, term, trunc, _ = env.step(a)
            if term or trunc:
                final[i] = o
                o, _ = env.reset()
            out.append((o, r, term, trunc))
        obs, rew, term, trunc = (np.array(x) for x in zip(*out))
        return obs, rew, term, trunc, final


@pytest.mark.parametrize("env_id,steps,eps", [("CartPole-v1", 5000, 0.12), ("CartPole-v0", 1500, 0.3)])
def test_steps_are_gymnasiums_bit_for_bit(env_id, steps, eps):
    E, seed = 4, 7
    fast, ref = make_vec_env(env_id, E, "fast"), _GymReference(E, seed, env_id)
    assert isinstance(fast, CartPoleVec)
    obs, _ = fast.reset(seed=seed)
    np.testing.assert_array_equal(obs, ref.obs)
    rng = np.random.default_rng(0)
    counts = {"terminated": 0, "truncated": 0}
    for _ in range(steps):
        a = _policy(obs, rng, eps)
        obs, rew, term, trunc, info = fast.step(a)
        r_obs, r_rew, r_term, r_trunc, r_final = ref.step(a)
        assert obs.dtype == np.float32 and rew.dtype == np.float64 and term.dtype == trunc.dtype == np.bool_
        np.testing.assert_array_equal(obs, r_obs)  # includes the first observation after a reset
        np.testing.assert_array_equal(rew, r_rew)
        np.testing.assert_array_equal(term, r_term)
        np.testing.assert_array_equal(trunc, r_trunc)
        ended = np.flatnonzero(term | trunc).tolist()
        assert sorted(r_final) == ended
        if ended:
            np.testing.assert_array_equal(info["_final_obs"], term | trunc)
            for i in ended:
                np.testing.assert_array_equal(info["final_obs"][i], r_final[i])
        else:
            assert "final_obs" not in info
        counts["terminated"] += int(term.sum())
        counts["truncated"] += int(trunc.sum())
    assert counts["terminated"] > 3 and counts["truncated"] > 3, counts


def test_same_as_sync_vector_env_same_step():
    E, seed = 3, 11
    fast, sync = make_vec_env("CartPole-v1", E, "fast"), make_vec_env("CartPole-v1", E, "sync")
    obs, _ = fast.reset(seed=seed)
    np.testing.assert_array_equal(obs, sync.reset(seed=seed)[0])
    rng = np.random.default_rng(1)
    for _ in range(2000):
        a = rng.integers(0, 2, E)
        obs, rew, term, trunc, info = fast.step(a)
        s_obs, s_rew, s_term, s_trunc, s_info = sync.step(a)
        np.testing.assert_array_equal(obs, s_obs)
        np.testing.assert_array_equal(term, s_term)
        np.testing.assert_array_equal(trunc, s_trunc)
        np.testing.assert_array_equal(rew, s_rew)
        for i in np.flatnonzero(term | trunc):
            np.testing.assert_array_equal(info["final_obs"][i], s_info["final_obs"][i])


def test_snapshot_restore_continues_exactly():
    E = 4
    a, b = make_vec_env("CartPole-v1", E, "fast"), make_vec_env("CartPole-v1", E, "fast")
    a.reset(seed=3)
    b.reset(seed=99)
    rng = np.random.default_rng(2)
    for _ in range(700):
        a.step(rng.integers(0, 2, E))
    metas, arrays, exact = snapshot_vec(a)
    assert exact
    restore_vec(b, metas, arrays)
    for _ in range(1500):  # past several resets, so the generators were restored too
        act = rng.integers(0, 2, E)
        for x, y in zip(a.step(act)[:4], b.step(act)[:4]):
            np.testing.assert_array_equal(x, y)
    with pytest.raises(EnvError, match="another vector env kind"):
        restore_vec(make_vec_env("CartPole-v1", E, "sync"), metas, arrays)


def test_auto_and_refusals():
    assert resolve_vector_env("CartPole-v1", "auto", 4) == "fast"
    assert resolve_vector_env("CartPole-v0", "auto", 8) == "fast"
    assert resolve_vector_env("CartPole-v1", "auto", 64) == "native"
    assert resolve_vector_env("Pendulum-v1", "auto", 4) == "sync"
    with pytest.raises(EnvError, match="--vector-env fast: 'Pendulum-v1'"):
        make_vec_env("Pendulum-v1", 2, "fast")
    env = make_vec_env("CartPole-v1", 2, "fast")
    env.reset(seed=0)
    with pytest.raises(EnvError, match="action 2 of env 1 is not in Discrete"):
        env.step(np.array([0, 2]))
    with pytest.raises(EnvError, match="expected 2 actions"):
        env.step(np.array([0, 1, 1]))


def test_run_started_on_sync_resumes_on_sync_under_auto(tmp_path, short_kwargs):
    """A run folder written when ``auto`` meant SyncVectorEnv (config ``auto``, checkpoint
    ``sync``) resumes with SyncVectorEnv and ends where the uninterrupted sync run ends."""
    import json

    from rlexport.train import make_config, train
    from rlexport.train.checkpoint import load_checkpoint
    from rlexport.train.loop import CHECKPOINT, TrainInterrupted

    a, b = tmp_path / "a", tmp_path / "b"
    train(make_config("ppo", "CartPole-v1", out=str(a), vector_env="sync", **short_kwargs))
    with pytest.raises(TrainInterrupted):
        train(make_config("ppo", "CartPole-v1", out=str(b), vector_env="sync", **short_kwargs), stop_after_updates=1)
    cfg = json.loads((b / "config.json").read_text())
    (b / "config.json").write_text(json.dumps({**cfg, "vector_env": "auto"}))
    train(resume=b)
    ta, ma = load_checkpoint(a / CHECKPOINT)
    tb, mb = load_checkpoint(b / CHECKPOINT)
    assert ma["vector_env"] == mb["vector_env"] == "sync"
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k
