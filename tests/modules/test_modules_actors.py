"""Actor/critic wrappers vs TorchRL's, sharing the very same nn.Module instances."""

from __future__ import annotations

import pytest
import torch
from helpers import assert_close, check
from tensordict import TensorDict
from tensordict.nn import InteractionType, TensorDictModule, set_interaction_type
from tensordict.nn import NormalParamExtractor as TDNormalParamExtractor
from torch import nn
from torchrl.modules import IndependentNormal as RLIndependentNormal
from torchrl.modules import OneHotCategorical as RLOneHotCategorical
from torchrl.modules import ProbabilisticActor as RLProbabilisticActor
from torchrl.modules import TanhNormal as RLTanhNormal
from torchrl.modules import ValueOperator as RLValueOperator

from rlexport.modules import (
    Categorical,
    IndependentNormal,
    NormalParamExtractor,
    OneHotCategorical,
    ProbabilisticActor,
    TanhNormal,
    ValueOperator,
)

DTYPES = [torch.float32, torch.float64]

# (ours, TorchRL's, param keys, kwargs, discrete)
CASES = {
    "categorical": (Categorical, torch.distributions.Categorical, ["logits"], {}, True),
    "onehot": (OneHotCategorical, RLOneHotCategorical, ["logits"], {}, True),
    "normal": (IndependentNormal, RLIndependentNormal, ["loc", "scale"], {}, False),
    "tanh": (TanhNormal, RLTanhNormal, ["loc", "scale"], {"low": -2.0, "high": 3.0, "upscale": 3.0}, False),
}


def _net(obs, act, continuous, dtype, seed=0):
    torch.manual_seed(seed)
    layers = [nn.Linear(obs, 16), nn.Tanh(), nn.Linear(16, 2 * act if continuous else act)]
    if continuous:
        layers.append(NormalParamExtractor())
    return nn.Sequential(*layers).to(dtype)


def _pair(case, dtype, **kw):
    ours_cls, rl_cls, keys, dkw, discrete = CASES[case]
    net = _net(5, 3, not discrete, dtype)
    ours = ProbabilisticActor(net, ["observation"], keys, ours_cls, dkw, **kw)
    rl = RLProbabilisticActor(
        TensorDictModule(net, ["observation"], keys), in_keys=keys, distribution_class=rl_cls,
        distribution_kwargs=dkw, **kw,
    )
    return net, ours, rl


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(CASES))
def test_actor_deterministic_matches_torchrl(case, dtype):
    net, ours, rl = _pair(case, dtype, return_log_prob=True)
    obs = torch.randn(7, 2, 5, dtype=dtype)
    td = rl(TensorDict({"observation": obs}, [7, 2]))
    assert ours.log_prob_key == "action_log_prob" and "action_log_prob" in td.keys()
    action, log_prob = ours(observation=obs)
    torch.testing.assert_close(action, td["action"])
    torch.testing.assert_close(log_prob, td["action_log_prob"])
    params = ours.dist_params(observation=obs)
    for k, v in params.items():
        torch.testing.assert_close(v, td[k])
    # values and gradients of log-prob/entropy w.r.t. the observation through the shared module
    a = td["action"]

    def ours_fn(observation):
        d = ours.get_dist(observation=observation)
        out = [d.log_prob(a)]
        if case != "tanh":
            out.append(d.entropy())
        return out

    def rl_fn(observation):
        d = rl.get_dist(TensorDict({"observation": observation}, [7, 2]))
        out = [d.log_prob(a)]
        if case != "tanh":
            out.append(d.entropy())
        return out

    # TorchRL builds Python-number bounds as float32 tensors, so its float64 TanhNormal adds
    # log((high-low)/2) rounded to float32 (~1e-8 per action dim): loose float64 tolerance here,
    # exact parity with float64 tensor bounds in test_tanh_normal_float64_bounds_exact.
    check(ours_fn, rl_fn, {"observation": obs}, kind="torchrl-float32-constants" if case == "tanh" else None)


@pytest.mark.parametrize("case", ["normal", "tanh"])
def test_actor_random_sample_with_noise_matches_torchrl(case):
    dtype = torch.float64
    net, ours, rl = _pair(case, dtype, return_log_prob=True)
    obs = torch.randn(6, 5, dtype=dtype)
    torch.manual_seed(3)
    with set_interaction_type(InteractionType.RANDOM):
        td = rl(TensorDict({"observation": obs}, [6]))
    torch.manual_seed(3)
    eps = torch.distributions.utils._standard_normal((6, 3), dtype=dtype, device=obs.device)
    action, log_prob = ours(observation=obs, noise=eps)
    torch.testing.assert_close(action, td["action"])
    assert_close(log_prob, td["action_log_prob"], "torchrl-float32-constants" if case == "tanh" else None)
    # the same without noise, via the "random" interaction type and the global RNG
    rand = ProbabilisticActor(net, ["observation"], ["loc", "scale"], CASES[case][0], CASES[case][3],
                              default_interaction_type="random")
    torch.manual_seed(3)
    torch.testing.assert_close(rand(observation=obs), td["action"])


def test_actor_defaults_and_options():
    net = _net(5, 3, False, torch.float32)
    actor = ProbabilisticActor(net, "observation", distribution_class=Categorical)
    assert actor.out_keys == ["logits"] and actor.in_keys == ["observation"]
    assert actor.default_interaction_type == "deterministic"
    assert actor.log_prob_key == "action_log_prob" and actor.output_keys == ["action"]
    obs = torch.randn(4, 5)
    assert torch.equal(actor(observation=obs), actor.get_dist(observation=obs).mode)
    actor2 = ProbabilisticActor(net, [("agents", "observation")], ["logits"], Categorical,
                                return_log_prob=True, log_prob_key="sample_log_prob")
    assert actor2.in_keys == ["agents_observation"]
    assert actor2.output_keys == ["action", "sample_log_prob"]
    a, lp = actor2(agents_observation=obs, noise=torch.full((4,), 0.5))
    assert a.shape == (4,) and lp.shape == (4,)
    with pytest.raises(ValueError, match="default_interaction_type"):
        ProbabilisticActor(net, ["observation"], ["logits"], Categorical, default_interaction_type="bogus")


def test_actor_keyword_errors():
    actor = ProbabilisticActor(_net(5, 3, True, torch.float32), ["observation"], ["loc", "scale"], IndependentNormal)
    with pytest.raises(TypeError, match="missing input 'observation'"):
        actor()
    with pytest.raises(TypeError, match="unknown input 'obs'"):
        actor(observation=torch.randn(2, 5), obs=torch.randn(2, 5))
    with pytest.raises(TypeError, match="torch.Tensor"):
        actor(observation=[1.0] * 5)
    critic = ValueOperator(nn.Linear(5, 1))
    with pytest.raises(TypeError, match="missing input 'observation'"):
        critic(next_observation=torch.randn(2, 5))


@pytest.mark.parametrize("dtype", DTYPES)
def test_value_operator_matches_torchrl(dtype):
    net = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1)).to(dtype)
    ours, rl = ValueOperator(net), RLValueOperator(net)
    assert ours.in_keys == [k for k in rl.in_keys] and ours.out_keys == list(rl.out_keys) == ["state_value"]
    obs = torch.randn(3, 4, 5, dtype=dtype)
    v = ours(observation=obs)
    assert v.shape == (3, 4, 1)
    torch.testing.assert_close(v, rl(TensorDict({"observation": obs}, [3, 4]))["state_value"])
    q = ValueOperator(nn.Linear(1, 1), in_keys=["observation", "action"])
    assert q.out_keys == ["state_action_value"] == list(RLValueOperator(nn.Linear(1, 1), in_keys=["observation", "action"]).out_keys)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mapping", ["biased_softplus_1.0", "biased_softplus_0.5_0.1", "softplus", "exp", "relu", "none", "expln", "biased_softplus"])
def test_normal_param_extractor_matches_tensordict(mapping, dtype):
    x = torch.randn(4, 6, dtype=dtype) * 30
    x[0, 3:] = torch.tensor([25.0, -25.0, 0.0], dtype=dtype)
    check(
        lambda x: NormalParamExtractor(mapping)(x),
        lambda x: TDNormalParamExtractor(mapping)(x),
        {"x": x},
    )
    extra = torch.randn(2)
    out = NormalParamExtractor(mapping, scale_lb=0.5)(x, extra)
    assert len(out) == 3 and out[2] is extra and (out[1] >= 0.5).all()
