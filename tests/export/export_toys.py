"""Small keyword-forward modules the export tests use (no dependency on the real losses)."""

from __future__ import annotations

import torch
from torch import nn


class ToyEstimator(nn.Module):
    """TD(0)-style advantage plus a reverse discounted sum along time: a graph with a time axis."""

    out_keys = ("advantage", "value_target")
    time_dim = -2

    def __init__(self, gamma: float = 0.9):
        super().__init__()
        self.gamma = gamma
        self.value = nn.Linear(3, 1)

    def export_config(self):
        return {"gamma": self.gamma, "time_dim": self.time_dim}

    def forward(self, *, next_reward, next_done, next_terminated, observation, next_observation):
        g = torch.tensor(self.gamma, dtype=next_reward.dtype)
        v = self.value(observation)
        nv = self.value(next_observation)
        not_term = (~next_terminated).to(v.dtype)
        delta = next_reward + g * not_term * nv - v
        # a time-coupled term: reverse cumulative sum masked by done
        keep = (~next_done).to(v.dtype)
        tail = torch.flip(torch.cumsum(torch.flip(delta * keep, [-2]), -2), [-2])
        return delta + 0.5 * tail, delta + v


class LoopEstimator(ToyEstimator):
    """The same with a Python loop over T: specialises T in any trace."""

    def forward(self, *, next_reward, next_done, next_terminated, observation, next_observation):
        g = torch.tensor(self.gamma, dtype=next_reward.dtype)
        v = self.value(observation)
        nv = self.value(next_observation)
        delta = next_reward + g * (~next_terminated).to(v.dtype) * nv - v
        acc = torch.zeros_like(delta[..., :1, :])
        outs = []
        for t in reversed(range(delta.shape[-2])):
            acc = delta[..., t : t + 1, :] + g * acc
            outs.append(acc)
        adv = torch.cat(outs[::-1], dim=-2)
        return adv, adv + v


class ToyLoss(nn.Module):
    """A categorical policy-gradient loss: scalar outputs, an int64 input, a learned layer."""

    out_keys = ("loss_objective", "loss_entropy", "loss_critic")

    def __init__(self, n_obs: int = 4, n_act: int = 3):
        super().__init__()
        torch.manual_seed(0)
        self.actor = nn.Linear(n_obs, n_act)
        self.critic = nn.Linear(n_obs, 1)

    def forward(self, *, observation, action, sample_log_prob, advantage, value_target):
        logp_all = torch.log_softmax(self.actor(observation), -1)
        logp = logp_all.gather(-1, action.unsqueeze(-1)).squeeze(-1)
        ratio = torch.exp(logp - sample_log_prob)
        obj = -(ratio * advantage.squeeze(-1)).mean()
        ent = (logp_all.exp() * logp_all).sum(-1).mean()
        crit = (self.critic(observation) - value_target).pow(2).mean()
        return obj, ent, crit


class SoftplusModule(nn.Module):
    """``softplus`` exports to ONNX Softplus, which ORT's CPU provider lacks in float64."""

    out_keys = ("y",)

    def forward(self, *, x):
        return torch.nn.functional.softplus(x) * 2


def estimator_example(batch: int = 4, time: int = 8, dtype=torch.float32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return {
        "next_reward": torch.randn(batch, time, 1, generator=g, dtype=dtype),
        "next_done": torch.rand(batch, time, 1, generator=g) < 0.2,
        "next_terminated": torch.rand(batch, time, 1, generator=g) < 0.1,
        "observation": torch.randn(batch, time, 3, generator=g, dtype=dtype),
        "next_observation": torch.randn(batch, time, 3, generator=g, dtype=dtype),
    }


def loss_example(batch: int = 6, n_obs: int = 4, n_act: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return {
        "observation": torch.randn(batch, n_obs, generator=g),
        "action": torch.randint(0, n_act, (batch,), generator=g),
        "sample_log_prob": -torch.rand(batch, generator=g) - 0.5,
        "advantage": torch.randn(batch, 1, generator=g),
        "value_target": torch.randn(batch, 1, generator=g),
    }
