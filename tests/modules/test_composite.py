"""CompositeDistribution / CompositeActor against tensordict 0.14's CompositeDistribution over
TorchRL's distributions (same parameters): per-head and summed log-probs, entropies, modes,
with gradients; explicit per-head noise; refusals by name."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rlexport.modules as rm
from helpers import assert_close, check, quiet

quiet()

B, OBS, NCAT, ACT = 5, 4, 3, 2
HEADS = {"move": rm.Categorical, "steer": rm.IndependentNormal, "throttle": rm.TanhNormal}


def _params(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "params_move_logits": torch.randn(B, NCAT, generator=g, dtype=dtype),
        "params_steer_loc": torch.randn(B, ACT, generator=g, dtype=dtype),
        "params_steer_scale": torch.rand(B, ACT, generator=g, dtype=dtype) + 0.5,
        "params_throttle_loc": torch.randn(B, ACT, generator=g, dtype=dtype),
        "params_throttle_scale": torch.rand(B, ACT, generator=g, dtype=dtype) + 0.5,
    }


def _actions(dtype, seed=1):
    g = torch.Generator().manual_seed(seed)
    return {
        "action_move": torch.randint(NCAT, (B,), generator=g),
        "action_steer": torch.randn(B, ACT, generator=g, dtype=dtype),
        "action_throttle": torch.rand(B, ACT, generator=g, dtype=dtype) * 3.8 - 1.9,
    }


def _ours(**kw):
    actor = rm.CompositeActor(nn.Identity(), ["x"], HEADS, {"throttle": {"low": -2.0, "high": 2.0}})
    return actor.build_dist({k: v for k, v in kw.items() if k.startswith("params_")})


def _theirs(**kw):
    from tensordict import TensorDict
    from tensordict.nn import CompositeDistribution, set_composite_lp_aggregate
    from torchrl.modules import IndependentNormal, TanhNormal

    params = TensorDict({
        "move": {"logits": kw["params_move_logits"]},
        "steer": {"loc": kw["params_steer_loc"], "scale": kw["params_steer_scale"]},
        "throttle": {"loc": kw["params_throttle_loc"], "scale": kw["params_throttle_scale"]},
    }, [B])
    with set_composite_lp_aggregate(False):
        return CompositeDistribution(
            params,
            {"move": torch.distributions.Categorical, "steer": IndependentNormal, "throttle": TanhNormal},
            name_map={h: ("action", h) for h in HEADS},
            extra_kwargs={"throttle": {"low": -2.0, "high": 2.0}},
        )


def _their_sample(kw):
    from tensordict import TensorDict

    return TensorDict({"action": {h: kw[f"action_{h}"] for h in HEADS}}, [B])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_log_prob_per_head_and_summed_match_tensordict(dtype):
    from tensordict.nn import set_composite_lp_aggregate

    inputs = {**_params(dtype), **_actions(dtype)}

    def ours(**kw):
        lp = _ours(**kw).log_prob_composite({h: kw[f"action_{h}"] for h in HEADS})
        return [lp[h] for h in HEADS] + [_ours(**kw).log_prob({h: kw[f"action_{h}"] for h in HEADS})]

    def theirs(**kw):
        dist = _theirs(**kw)
        with set_composite_lp_aggregate(False):
            lp = dist.log_prob_composite(_their_sample(kw))
        with set_composite_lp_aggregate(True):
            total = dist.log_prob(_their_sample(kw))
        return [lp["action", f"{h}_log_prob"] for h in HEADS] + [total]

    check(ours, theirs, inputs, kind=("tanh", dtype), grad_wrt=tuple(_params(dtype)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_closed_form_entropy_per_head_matches_tensordict(dtype):
    from tensordict.nn import set_composite_lp_aggregate

    heads = ("move", "steer")
    inputs = _params(dtype)

    def ours(**kw):
        e = _ours(**kw).entropy_composite()
        return [e[h] for h in heads]

    def theirs(**kw):
        with set_composite_lp_aggregate(False):
            e = _theirs(**kw).dists
            return [e[("action", h)].entropy() for h in heads]

    check(ours, theirs, inputs, grad_wrt=tuple(inputs))


def test_monte_carlo_entropy_of_tanh_head_uses_the_given_noise():
    dist = _ours(**_params(torch.float64))
    noise = torch.randn(4, B, ACT, dtype=torch.float64)
    est = dist.entropy_composite(4, noise={"throttle": noise})["throttle"]
    head = dist["throttle"]
    x = head.loc + noise * head.scale
    expected = -torch.stack([head._log_prob_pre(x[i]) for i in range(4)]).mean(0)
    assert_close(est, expected, torch.float64)
    total = dist.entropy(4, noise={"throttle": noise})
    assert_close(total, dist["move"].entropy() + dist["steer"].entropy() + est, torch.float64)


def test_sampling_from_explicit_noise_is_each_heads_own_rule():
    dist = _ours(**_params(torch.float32))
    noise = {"move": torch.rand(B), "steer": torch.randn(B, ACT), "throttle": torch.randn(B, ACT)}
    draws = dist.draw(noise)
    assert torch.equal(draws["move"], dist["move"].sample(noise=noise["move"]))
    assert torch.equal(draws["steer"], dist["steer"].rsample(noise=noise["steer"]))
    assert torch.equal(draws["throttle"], dist["throttle"].rsample(noise=noise["throttle"]))
    modes = dist.deterministic_sample
    assert torch.equal(modes["move"], dist["move"].probs.argmax(-1))
    assert not dist.has_rsample  # Categorical has none


def test_actor_outputs_and_param_split():
    torch.manual_seed(0)
    ex = rm.CompositeParamExtractor({"move": (rm.Categorical, NCAT), "throttle": (rm.TanhNormal, ACT)})
    net = nn.Sequential(nn.Linear(OBS, ex.width), ex)
    actor = rm.CompositeActor(net, ["observation"], {"move": rm.Categorical, "throttle": rm.TanhNormal},
                              return_log_prob=True)
    obs = torch.randn(B, OBS)
    noise = {"noise_move": torch.rand(B), "noise_throttle": torch.randn(B, ACT)}
    move, throttle, lp_move, lp_throttle = actor(observation=obs, **noise)
    assert actor.output_keys == ["action_move", "action_throttle", "action_move_log_prob", "action_throttle_log_prob"]
    logits, loc, pre_scale = net[0](obs).split([NCAT, ACT, ACT], -1)
    scale = rm.NormalParamExtractor()(torch.cat([loc, pre_scale], -1))[1]
    assert torch.equal(move, rm.Categorical(logits=logits).sample(noise=noise["noise_move"]))
    assert_close(lp_throttle, rm.TanhNormal(loc, scale).log_prob(throttle), ("tanh", torch.float32))
    agg = rm.CompositeActor(net, ["observation"], {"move": rm.Categorical, "throttle": rm.TanhNormal},
                            return_log_prob=True, aggregate_log_prob=True)
    *_, total = agg(observation=obs, **noise)
    assert agg.output_keys[-1] == "sample_log_prob"
    assert_close(total, lp_move + lp_throttle, torch.float32)


@pytest.mark.parametrize("build, message", [
    (lambda: rm.CompositeActor(nn.Identity(), ["x"], {"bad-name": rm.Categorical}), "identifier"),
    (lambda: rm.CompositeActor(nn.Identity(), ["x"], {"a": rm.Categorical}, {"b": {}}), "unknown head 'b'"),
    (lambda: rm.CompositeDistribution({"a": rm.Categorical(torch.zeros(2, 3)), "b": rm.Categorical(torch.zeros(3, 3))}),
     "batch shape"),
    (lambda: _ours(**_params(torch.float32)).log_prob({"move": torch.zeros(B, dtype=torch.long)}), "missing head 'steer'"),
])
def test_refusals_name_the_problem(build, message):
    with pytest.raises((ValueError, TypeError), match=message):
        build()
