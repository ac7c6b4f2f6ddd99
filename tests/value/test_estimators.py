"""Estimator modules against TorchRL 0.14.1's modules (shared weights) and the float64 loop."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.objectives import utils as rl_utils
from torchrl.objectives.value import GAE as RGAE
from torchrl.objectives.value import TD0Estimator as RTD0
from torchrl.objectives.value import TD1Estimator as RTD1
from torchrl.objectives.value import TDLambdaEstimator as RTDL

import helpers as ref
from helpers import StandInValue, assert_close
from rlexport.value import (
    GAE,
    TD0Estimator,
    TD1Estimator,
    TDLambdaEstimator,
    ValueEstimators,
    VTrace,
    default_value_kwargs,
)

LOOSE = "torchrl-float32-constants"  # TorchRL rounds float64 gamma to float32
TIGHT = "loop"


def _batch(B=3, T=8, obs=4, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    r, _, _, done, term = ref.data((B, T, 1), dtype=dtype, seed=seed)
    o = torch.randn(B, T, obs, generator=gen).to(dtype)
    no = torch.randn(B, T, obs, generator=gen).to(dtype)
    return dict(observation=o, next_observation=no, next_reward=r, next_done=done, next_terminated=term)


def _td(kw):
    B, T = kw["next_reward"].shape[:2]
    return TensorDict(
        {"observation": kw["observation"],
         "next": {"observation": kw["next_observation"], "reward": kw["next_reward"],
                  "done": kw["next_done"], "terminated": kw["next_terminated"]}},
        batch_size=[B, T],
    )


CASES = [
    (lambda net: GAE(gamma=0.97, lmbda=0.9, value_network=net), lambda net: RGAE(gamma=0.97, lmbda=0.9, value_network=net)),
    (lambda net: GAE(gamma=0.97, lmbda=0.9, value_network=net, average_gae=True),
     lambda net: RGAE(gamma=0.97, lmbda=0.9, value_network=net, average_gae=True)),
    (lambda net: TD0Estimator(gamma=0.9, value_network=net), lambda net: RTD0(gamma=0.9, value_network=net)),
    (lambda net: TD1Estimator(gamma=0.9, value_network=net), lambda net: RTD1(gamma=0.9, value_network=net)),
    (lambda net: TDLambdaEstimator(gamma=0.9, lmbda=0.8, value_network=net),
     lambda net: RTDL(gamma=0.9, lmbda=0.8, value_network=net)),
    (lambda net: TDLambdaEstimator(gamma=0.9, lmbda=0.8, value_network=net, average_rewards=True),
     lambda net: RTDL(gamma=0.9, lmbda=0.8, value_network=net, average_rewards=True)),
]


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("pattern", ["random", "none", "last"])
def test_modules_match_torchrl(case, pattern):
    torch.manual_seed(case)
    lin = nn.Linear(4, 1)
    ours, theirs = CASES[case][0](StandInValue(lin)), CASES[case][1](TensorDictModule(lin, ["observation"], ["state_value"]))
    kw = _batch(seed=case)
    done, term = ref.flags((3, 8, 1), pattern, torch.Generator().manual_seed(1))
    kw.update(next_done=done, next_terminated=term)
    adv, target = ours(**kw)
    td = theirs(_td(kw))
    assert_close(adv, td["advantage"], LOOSE)
    assert_close(target, td["value_target"], LOOSE)


def test_given_values_and_float64_against_loop():
    kw = _batch(dtype=torch.float64, seed=3)
    gen = torch.Generator().manual_seed(0)
    v, nv = (torch.randn(3, 8, 1, generator=gen, dtype=torch.float64) for _ in range(2))
    r, done, term = kw["next_reward"], kw["next_done"], kw["next_terminated"]
    flags = dict(next_reward=r, next_done=done, next_terminated=term, state_value=v, next_state_value=nv)
    adv, target = GAE(gamma=0.99, lmbda=0.95)(**flags)
    assert_close((adv, target), ref.gae(0.99, 0.95, v, nv, r, done, term), TIGHT)
    adv, target = TDLambdaEstimator(gamma=0.99, lmbda=0.95)(**flags)
    assert_close(target, ref.td_lambda(0.99, 0.95, nv, r, done, term), TIGHT)
    adv, target = TD1Estimator(gamma=0.99)(**flags)
    assert_close(target, ref.td_lambda(0.99, 1.0, nv, r, done, term), TIGHT)
    lp, lm = (torch.randn(3, 8, generator=gen, dtype=torch.float64) for _ in range(2))  # [*batch, T] log-probs
    adv, vs = VTrace(gamma=0.99, rho_thresh=0.9, c_thresh=0.7)(**flags, sample_log_prob=lm, target_log_prob=lp)
    assert_close((adv, vs), ref.vtrace(0.99, lp[..., None], lm[..., None], v, nv, r, done, term, 0.9, 0.7), TIGHT)


class StandInActor(nn.Module):
    in_keys = ["observation"]

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def get_dist(self, observation):
        return torch.distributions.Categorical(logits=self.lin(observation), validate_args=False)


def test_vtrace_actor_network_and_value_network():
    kw = _batch(seed=5)
    actor = StandInActor()
    action = torch.randint(0, 3, (3, 8))
    lm = torch.randn(3, 8, 1)
    vt = VTrace(gamma=0.9, actor_network=actor, value_network=StandInValue(nn.Linear(4, 1)))
    adv, vs = vt(**kw, action=action, sample_log_prob=lm)
    lp = actor.get_dist(kw["observation"]).log_prob(action).unsqueeze(-1)
    vt2 = VTrace(gamma=0.9, value_network=vt.value_network)
    adv2, vs2 = vt2(**kw, target_log_prob=lp.detach(), sample_log_prob=lm)
    torch.testing.assert_close((adv, vs), (adv2, vs2))
    assert "action" in vt.in_keys and "sample_log_prob" in vt.in_keys
    assert "target_log_prob" in vt2.in_keys


def test_differentiable_semantics():
    lin = nn.Linear(4, 1)
    kw = _batch(seed=6)
    adv, _ = GAE(gamma=0.9, lmbda=0.9, value_network=StandInValue(lin))(**kw)
    assert not adv.requires_grad  # differentiable=False: no_grad
    gae = GAE(gamma=0.9, lmbda=0.9, value_network=StandInValue(lin), differentiable=True)
    obs = kw["observation"].requires_grad_()
    adv, _ = gae(**kw)
    adv.sum().backward()
    assert lin.weight.grad is None  # the value network is held out of the graph
    assert obs.grad is not None  # ... but gradients reach its inputs (TorchRL's hold_out_net)
    # given values: gradients flow to state_value, never to next_state_value when computed
    v = torch.randn(3, 8, 1, dtype=torch.float64, requires_grad=True)
    nv = torch.randn(3, 8, 1, dtype=torch.float64)
    r, done, term = ref.data((3, 8, 1), seed=2)[0], kw["next_done"], kw["next_terminated"]
    adv, _ = GAE(gamma=0.9, lmbda=0.8, differentiable=True)(next_reward=r, next_done=done, next_terminated=term, state_value=v, next_state_value=nv)
    adv.pow(2).sum().backward()
    v_ref = v.detach().clone().requires_grad_()
    ref.gae(0.9, 0.8, v_ref, nv, r, done, term)[0].pow(2).sum().backward()
    assert_close(v.grad, v_ref.grad, TIGHT)


def test_keys_enum_defaults():
    net = StandInValue(nn.Linear(4, 1))
    gae = GAE(gamma=0.9, lmbda=0.9, value_network=net)
    assert gae.in_keys == ["observation", "next_reward", "next_done", "next_terminated", "next_observation"]
    assert gae.out_keys == ["advantage", "value_target"]
    gae.set_keys(advantage="adv", reward=("agent", "reward"), value_target="vt")
    assert gae.out_keys == ["adv", "vt"]
    kw = _batch(seed=7)
    kw["next_agent_reward"] = kw.pop("next_reward")
    adv, vt = gae(**kw)
    assert adv.shape == (3, 8, 1)
    with pytest.raises(ValueError, match="not supported"):
        gae.set_keys(bogus="x")
    assert [m.name for m in ValueEstimators] == [m.name for m in rl_utils.ValueEstimators]
    assert [m.value for m in ValueEstimators] == [m.value for m in rl_utils.ValueEstimators]
    for m in ValueEstimators:
        assert default_value_kwargs(m) == rl_utils.default_value_kwargs(rl_utils.ValueEstimators[m.name])
    assert default_value_kwargs("gae") == default_value_kwargs(ValueEstimators.GAE)
    with pytest.raises(ValueError, match="not supported"):
        default_value_kwargs("nope")


def test_bad_keywords():
    gae = GAE(gamma=0.9, lmbda=0.9)
    kw = _batch(seed=8)
    with pytest.raises(TypeError, match="missing input 'state_value'"):
        gae(next_reward=kw["next_reward"], next_done=kw["next_done"])
    with pytest.raises(TypeError, match="unknown input 'observation'"):
        gae(**kw, state_value=kw["next_reward"], next_state_value=kw["next_reward"])
    net_gae = GAE(gamma=0.9, lmbda=0.9, value_network=StandInValue(nn.Linear(4, 1)))
    kw.pop("next_observation")
    with pytest.raises(TypeError, match="missing input 'next_observation'"):
        net_gae(**kw)
    with pytest.raises(TypeError, match="'next_done' must be a bool tensor"):
        gae(next_reward=kw["next_reward"], next_done=kw["next_reward"], state_value=kw["next_reward"], next_state_value=kw["next_reward"])
    with pytest.raises(ValueError, match="VTrace: gamma must be a scalar"):
        VTrace(gamma=torch.ones(3))


@pytest.mark.parametrize("case", range(len(CASES)))
def test_nan_next_observation_after_a_terminal_step_matches_torchrl(case):
    """Environments fill the observation after a terminal step with NaN: TorchRL replaces NaN next
    observations by the current ones before its value network runs and then masks the value at
    terminated steps; the estimates stay finite and equal TorchRL's (a truncation with a NaN next
    observation bootstraps from the current one, as TorchRL)."""
    torch.manual_seed(case)
    lin = nn.Linear(4, 1)
    ours, theirs = CASES[case][0](StandInValue(lin)), CASES[case][1](TensorDictModule(lin, ["observation"], ["state_value"]))
    kw = _batch(seed=case)
    done = torch.zeros(3, 8, 1, dtype=torch.bool)
    done[0, 2] = done[1, 5] = done[2, 7] = True
    term = done.clone()
    term[1, 5] = False  # a truncation
    kw.update(next_done=done, next_terminated=term)
    kw["next_observation"][done.expand(-1, -1, 4)] = float("nan")
    adv, target = ours(**kw)
    assert torch.isfinite(adv).all() and torch.isfinite(target).all()
    td = theirs(_td(kw))
    assert_close(adv, td["advantage"], LOOSE)
    assert_close(target, td["value_target"], LOOSE)
