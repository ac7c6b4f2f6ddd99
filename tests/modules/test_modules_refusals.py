"""Distributions and actors refuse inputs they cannot compute with (naming the key and both
dtypes); out-of-range category indices give NaN, identically in eager and in an exported graph."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rlexport.inputs import InputDtypeError
from rlexport.modules import Categorical, Delta, IndependentNormal, OneHotCategorical, ProbabilisticActor, TanhNormal, ValueOperator


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bool])
def test_categorical_refuses_non_integer_actions(dtype):
    dist = Categorical(logits=torch.randn(4, 3))
    with pytest.raises(InputDtypeError, match=rf"Categorical.log_prob: input 'value' has dtype {dtype}; a discrete action"):
        dist.log_prob(torch.tensor([0.7, 1.0, 0.0, 2.0]).to(dtype))


@pytest.mark.parametrize("make", [
    lambda: IndependentNormal(torch.zeros(4, 2), torch.ones(4, 2)),
    lambda: TanhNormal(torch.zeros(4, 2), torch.ones(4, 2)),
    lambda: Delta(torch.zeros(4, 2)),
], ids=["IndependentNormal", "TanhNormal", "Delta"])
def test_continuous_distributions_refuse_integer_actions(make):
    dist = make()
    with pytest.raises(InputDtypeError, match=r"input 'value' has dtype torch.int64; a continuous action is a floating-point"):
        dist.log_prob(torch.zeros(4, 2, dtype=torch.long))


def test_one_hot_takes_any_dtype():
    dist = OneHotCategorical(logits=torch.randn(4, 3))
    one_hot = torch.eye(3)[[0, 2, 1, 1]]
    assert torch.equal(dist.log_prob(one_hot), dist.log_prob(one_hot.long()))


class _LogProb(nn.Module):
    def forward(self, logits, action):
        return Categorical(logits=logits).log_prob(action)


def test_out_of_range_categorical_index_is_nan_in_eager_and_graph():
    logits = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    action = torch.tensor([0, 2, 3, -1, 1, 7])
    eager = _LogProb()(logits, action)
    expected = torch.log_softmax(logits, -1).gather(-1, action.clamp(0, 2)[:, None])[:, 0].detach()
    inside = (action >= 0) & (action < 3)
    assert torch.equal(eager[inside].detach(), expected[inside])
    assert torch.isnan(eager[~inside]).all()
    eager.nan_to_num(0.0).sum().backward()
    assert torch.isfinite(logits.grad).all() and (logits.grad[~inside] == 0).all()
    program = torch.export.export(_LogProb(), (logits.detach(), action), strict=False)
    assert torch.equal(program.module()(logits.detach(), action).nan_to_num(5.0), eager.detach().nan_to_num(5.0))


def test_actor_and_critic_refuse_another_dtype_before_running():
    actor = ProbabilisticActor(nn.Linear(3, 4), ["observation"], ["logits"], distribution_class=Categorical)
    critic = ValueOperator(nn.Linear(3, 1))
    obs = torch.zeros(2, 3, dtype=torch.float64)
    message = r"input 'observation' has dtype torch.float64 but the network's parameters are torch.float32"
    with pytest.raises(InputDtypeError, match="ProbabilisticActor: " + message):
        actor(observation=obs)
    with pytest.raises(InputDtypeError, match="ProbabilisticActor: " + message):
        actor.get_dist_from({"observation": obs})
    with pytest.raises(InputDtypeError, match="ValueOperator: " + message):
        critic(observation=obs)
    assert critic(observation=obs.float()).shape == (2, 1)
