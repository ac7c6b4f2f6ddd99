"""rlexport.models presets: registry, shapes, CleanRL init, TorchRL wrapping of the same nets."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.modules import IndependentNormal as RLIndependentNormal
from torchrl.modules import ProbabilisticActor as RLProbabilisticActor
from torchrl.modules import TanhNormal as RLTanhNormal
from torchrl.modules import ValueOperator as RLValueOperator

from rlexport.models import get_preset, list_presets
from rlexport.modules import NormalParamExtractor, ProbabilisticActor, ValueOperator

EXPECTED = {
    "cartpole": (4, 2, "discrete", "Categorical"),
    "pendulum": (3, 1, "continuous", "TanhNormal"),
    "mujoco": (17, 6, "continuous", "IndependentNormal"),
}
RL_DIST = {"Categorical": torch.distributions.Categorical, "TanhNormal": RLTanhNormal,
           "IndependentNormal": RLIndependentNormal}


def test_registry():
    assert set(EXPECTED) <= set(list_presets())
    with pytest.raises(KeyError, match="cartpole"):
        get_preset("nope")


@pytest.mark.parametrize("name", list(EXPECTED))
@pytest.mark.parametrize("time", [None, 5])
def test_preset_shapes(name, time):
    obs_dim, act_dim, kind, dist = EXPECTED[name]
    ac = get_preset(name).build()
    assert (ac.obs_dim, ac.action_dim, ac.action_kind, ac.distribution) == (obs_dim, act_dim, kind, dist)
    assert isinstance(ac.actor, ProbabilisticActor) and isinstance(ac.critic, ValueOperator)
    ex = ac.example_inputs((3, 2), time)
    P = (3, 2) + ((time,) if time else ())
    assert set(ex) == {"observation", "action", ac.actor.log_prob_key, "next_reward", "next_done",
                       "next_terminated", "next_observation"}
    assert ex["observation"].shape == ex["next_observation"].shape == (*P, obs_dim)
    assert ex["action"].shape == (P if kind == "discrete" else (*P, act_dim))
    assert ex["action"].dtype == (torch.int64 if kind == "discrete" else torch.float32)
    assert ex[ac.actor.log_prob_key].shape == P
    for k in ("next_reward", "next_done", "next_terminated"):
        assert ex[k].shape == (*P, 1)
    assert ex["next_done"].dtype == ex["next_terminated"].dtype == torch.bool
    assert not (ex["next_terminated"] & ~ex["next_done"]).any()
    if time:
        torch.testing.assert_close(ex["next_observation"][..., :-1, :], ex["observation"][..., 1:, :])
    # the stored log-prob is the actor's log-prob of the stored action
    dist = ac.actor.get_dist(observation=ex["observation"])
    torch.testing.assert_close(dist.log_prob(ex["action"]), ex[ac.actor.log_prob_key])
    assert ac.critic(observation=ex["observation"]).shape == (*P, 1)
    if name == "pendulum":
        assert (ex["action"].abs() < 2).all()
    # deterministic in the seed
    assert torch.equal(ac.example_inputs(4, seed=1)["observation"], ac.example_inputs(4, seed=1)["observation"])
    # custom log-prob key
    assert "sample_log_prob" in ac.example_inputs(2, log_prob_key="sample_log_prob")


@pytest.mark.parametrize("name", list(EXPECTED))
def test_preset_cleanrl_init_and_sizes(name):
    ac = get_preset(name).build(obs_dim=7, action_dim=3, seed=1)
    assert ac.obs_dim == 7 and ac.action_dim == 3
    linears = [m for m in ac.critic_net.modules() if isinstance(m, nn.Linear)]
    assert [lin.out_features for lin in linears] == [64, 64, 1]
    assert all(isinstance(m, nn.Tanh) for m in ac.critic_net if not isinstance(m, nn.Linear))
    for lin, gain in zip(linears, [math.sqrt(2), math.sqrt(2), 1.0]):
        w = lin.weight.detach().double()
        # orthogonal rows/cols scaled by the gain
        small = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        torch.testing.assert_close(small, gain**2 * torch.eye(small.shape[0], dtype=torch.float64), atol=1e-5, rtol=0)
        assert torch.equal(lin.bias, torch.zeros_like(lin.bias))
    actor_linears = [m for m in ac.actor_net.modules() if isinstance(m, nn.Linear)]
    head = actor_linears[-1].weight.detach().double()
    assert head.shape[0] == (3 if EXPECTED[name][2] == "discrete" else 6)
    torch.testing.assert_close(head @ head.T, 1e-4 * torch.eye(head.shape[0], dtype=torch.float64), atol=1e-9, rtol=0)
    if EXPECTED[name][2] == "continuous":
        assert isinstance(ac.actor_net[-1], NormalParamExtractor)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_preset_dtype_and_seed(name):
    a32 = get_preset(name).build(seed=3)
    a64 = get_preset(name).build(seed=3, dtype=torch.float64)
    b32 = get_preset(name).build(seed=4)
    p32, p64, q32 = (list(m.actor_net.parameters()) for m in (a32, a64, b32))
    assert all(p.dtype == torch.float64 for p in p64)
    assert all(torch.equal(x.double(), y) for x, y in zip(p32, p64))
    assert not all(torch.equal(x, y) for x, y in zip(p32, q32))
    ex = a64.example_inputs(5)
    assert ex["observation"].dtype == ex["next_reward"].dtype == torch.float64


@pytest.mark.parametrize("name", list(EXPECTED))
def test_preset_nets_wrap_in_torchrl(name):
    ac = get_preset(name).build(dtype=torch.float64)
    ex = ac.example_inputs(6)
    rl_actor = RLProbabilisticActor(
        TensorDictModule(ac.actor_net, ["observation"], ac.actor.out_keys), in_keys=ac.actor.out_keys,
        distribution_class=RL_DIST[ac.distribution], distribution_kwargs=ac.distribution_kwargs,
        return_log_prob=True,
    )
    td = rl_actor(TensorDict({"observation": ex["observation"]}, [6]))
    action, log_prob = ac.actor(observation=ex["observation"])
    torch.testing.assert_close(action, td["action"])
    torch.testing.assert_close(log_prob, td["action_log_prob"], rtol=1e-6, atol=1e-6)
    rl_critic = RLValueOperator(ac.critic_net, in_keys=["observation"])
    torch.testing.assert_close(
        ac.critic(observation=ex["observation"]),
        rl_critic(TensorDict({"observation": ex["observation"]}, [6]))["state_value"],
    )


def test_preset_build_errors():
    with pytest.raises(ValueError, match="obs_dim"):
        get_preset("cartpole").build(obs_dim=0)
    with pytest.raises(TypeError, match="floating"):
        get_preset("cartpole").build(dtype=torch.int64)
