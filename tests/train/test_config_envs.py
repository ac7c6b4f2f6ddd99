import gymnasium as gym
import numpy as np
import pytest

from rlexport.train.config import TrainConfig, make_config
from rlexport.train.envs import EnvError, ObsNormalizer, RewardScaler, describe_spaces, make_vec_env, restore_vec, snapshot_vec


def test_ppo_defaults_are_cleanrl():
    c = make_config("ppo", "CartPole-v1")
    assert (c.num_envs, c.num_steps, c.update_epochs, c.num_minibatches) == (4, 128, 4, 4)
    assert (c.clip_coef, c.gamma, c.gae_lambda, c.learning_rate, c.adam_eps) == (0.2, 0.99, 0.95, 2.5e-4, 1e-5)
    assert c.anneal_lr and c.norm_adv and c.clip_vloss and c.ent_coef == 0.01 and c.vf_coef == 0.5
    assert c.max_grad_norm == 0.5 and c.critic_coeff == 0.25 and c.total_steps == 500_000


def test_a2c_defaults_and_overrides():
    c = make_config("a2c", "CartPole-v1", learning_rate=1e-3)
    assert (c.num_envs, c.num_steps, c.update_epochs, c.num_minibatches, c.gae_lambda) == (8, 5, 1, 1, 1.0)
    assert c.learning_rate == 1e-3 and not c.norm_adv and not c.anneal_lr
    assert TrainConfig.from_dict(__import__("json").loads(c.to_json())) == c


@pytest.mark.parametrize("kw, msg", [
    (dict(num_envs=0), "--num-envs"), (dict(gamma=1.5), "--gamma"), (dict(engine="jax"), "--engine"),
    (dict(num_minibatches=10_000), "--num-minibatches"), (dict(box_distribution="beta"), "--box-distribution"),
])
def test_bad_config_values(kw, msg):
    with pytest.raises(ValueError, match=msg):
        make_config("ppo", "CartPole-v1", **kw)


def test_unknown_env_and_unsupported_space():
    with pytest.raises(EnvError, match="unknown Gymnasium environment id 'NoSuchEnv-v9'"):
        describe_spaces("NoSuchEnv-v9")
    with pytest.raises(EnvError, match="observation space"):
        describe_spaces("Blackjack-v1")  # Tuple observations
    o, a = describe_spaces("Pendulum-v1")
    assert a.shape == (1,)


def test_same_step_autoreset_gives_final_observation():
    vec = make_vec_env("CartPole-v1", 2)
    vec.reset(seed=0)
    for _ in range(200):
        obs, r, term, trunc, info = vec.step(np.array([1, 1]))
        if (term | trunc).any():
            i = int(np.nonzero(term | trunc)[0][0])
            assert info["_final_obs"][i]
            assert not np.allclose(info["final_obs"][i], obs[i])  # obs[i] is already the reset obs
            assert np.all(np.abs(obs[i]) <= 0.05)
            break
    else:
        pytest.fail("no episode ended")
    vec.close()


def test_env_snapshot_restores_exactly():
    a = make_vec_env("CartPole-v1", 3)
    a.reset(seed=1)
    rng = np.random.default_rng(0)
    for _ in range(30):
        a.step(rng.integers(0, 2, 3))
    metas, arrays, exact = snapshot_vec(a)
    assert exact
    b = make_vec_env("CartPole-v1", 3)
    b.reset(seed=99)
    restore_vec(b, __import__("json").loads(__import__("json").dumps(metas)), arrays)
    for _ in range(100):  # includes terminations and seeded resets
        act = rng.integers(0, 2, 3)
        ra, rb = a.step(act), b.step(act)
        np.testing.assert_array_equal(ra[0], rb[0])
        np.testing.assert_array_equal(ra[2], rb[2])


def test_normalizers():
    n = ObsNormalizer(2, True)
    x = np.random.default_rng(0).normal(5, 3, (1000, 2))
    n.update(x)
    y = n(x)
    assert abs(y.mean()) < 0.05 and abs(y.std() - 1) < 0.05
    s = RewardScaler(2, 0.99, True)
    out = s(np.array([1.0, 2.0]), np.array([False, True]))
    assert out.dtype == np.float32 and s.returns[1] == 0.0
