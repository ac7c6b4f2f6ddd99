"""Small keyword-forward losses for the train-step tests (no dependency on rlexport.objectives)."""

from __future__ import annotations

import math

import torch
from torch import nn

from rlexport.inputs import constant_like


class MLPActorCriticPPO(nn.Module):
    """A hand-written clipped-PPO loss over a Gaussian MLP actor and an MLP critic.

    ``loss(observation, action, sample_log_prob, advantage, value_target)`` →
    ``(loss_objective, clip_fraction, loss_critic, loss_entropy, entropy)``.
    ``shared=True`` puts a shared trunk under both heads; ``separate_losses`` detaches the
    trunk in the critic loss (TorchRL's meaning).
    """

    out_keys = ("loss_objective", "clip_fraction", "loss_critic", "loss_entropy", "entropy")

    def __init__(self, obs_dim=5, act_dim=2, hidden=16, shared=False, separate_losses=False, clip_epsilon=0.2):
        super().__init__()
        self.shared = shared
        self.separate_losses = separate_losses
        self.clip_epsilon = clip_epsilon
        if shared:
            self.trunk = nn.Sequential(nn.Linear(obs_dim, hidden), nn.Tanh())
            self.actor = nn.Sequential(nn.Linear(hidden, 2 * act_dim))
            self.critic = nn.Sequential(nn.Linear(hidden, 1))
        else:
            self.actor = nn.Sequential(nn.Linear(obs_dim, hidden), nn.Tanh(), nn.Linear(hidden, 2 * act_dim))
            self.critic = nn.Sequential(nn.Linear(obs_dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.register_buffer("entropy_coef", torch.tensor(0.01))
        self.register_buffer("critic_coef", torch.tensor(0.5))

    def forward(self, observation, action, sample_log_prob, advantage, value_target):
        x = observation
        if self.shared:
            h = self.trunk(x)
            hc = h.detach() if self.separate_losses else h
            loc, raw = self.actor(h).chunk(2, -1)
            value = self.critic(hc)
        else:
            loc, raw = self.actor(x).chunk(2, -1)
            value = self.critic(x)
        c = lambda v: constant_like(v, raw)  # noqa: E731 - constants in the input dtype (float64 parity)
        scale = torch.relu(raw) + torch.log1p(torch.exp(-raw.abs())) + c(1e-3)  # softplus: no float64 ORT kernel
        half_log_2pi = c(0.5 * math.log(2 * math.pi))
        log_prob = (-((action - loc) ** 2) / (2 * scale**2) - scale.log() - half_log_2pi).sum(-1, keepdim=True)
        ratio = (log_prob - sample_log_prob).exp()
        one = c(1.0)
        eps = c(self.clip_epsilon)
        gain1 = ratio * advantage
        gain2 = ratio.clamp(one - eps, one + eps) * advantage
        loss_objective = -torch.minimum(gain1, gain2).mean()
        clip_fraction = ((ratio - one).abs() > eps).to(ratio.dtype).mean()
        loss_critic = self.critic_coef * (value - value_target).pow(2).mean()
        entropy = (c(0.5) + half_log_2pi + scale.log()).sum(-1).mean()
        loss_entropy = -self.entropy_coef * entropy
        return loss_objective, clip_fraction.detach(), loss_critic, loss_entropy, entropy.detach()


class CategoricalA2C(nn.Module):
    """A small A2C loss with a categorical actor; integer actions; a [B, T, F] time axis allowed."""

    out_keys = ("loss_objective", "loss_critic", "loss_entropy")

    def __init__(self, obs_dim=4, n_actions=3, hidden=8):
        super().__init__()
        self.actor = nn.Sequential(nn.Linear(obs_dim, hidden), nn.ReLU(), nn.Linear(hidden, n_actions))
        self.critic = nn.Sequential(nn.Linear(obs_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, observation, action, advantage, value_target):
        logits = self.actor(observation)
        logp = torch.log_softmax(logits, -1)
        lp = logp.gather(-1, action.unsqueeze(-1))
        ent = -(logp.exp() * logp).sum(-1, keepdim=True)
        loss_objective = -(lp * advantage).mean()
        loss_critic = torch.nn.functional.smooth_l1_loss(self.critic(observation), value_target)
        loss_entropy = -constant_like(0.01, ent) * ent.mean()
        return loss_objective, loss_critic, loss_entropy


def ppo_batch(n, obs_dim=5, act_dim=2, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "observation": torch.randn(n, obs_dim, generator=g, dtype=dtype),
        "action": torch.randn(n, act_dim, generator=g, dtype=dtype),
        "sample_log_prob": -torch.rand(n, 1, generator=g, dtype=dtype) * 3,
        "advantage": torch.randn(n, 1, generator=g, dtype=dtype),
        "value_target": torch.randn(n, 1, generator=g, dtype=dtype),
    }


def a2c_batch(n, t=None, obs_dim=4, n_actions=3, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    lead = (n,) if t is None else (n, t)
    return {
        "observation": torch.randn(*lead, obs_dim, generator=g, dtype=dtype),
        "action": torch.randint(0, n_actions, lead, generator=g),
        "advantage": torch.randn(*lead, 1, generator=g, dtype=dtype),
        "value_target": torch.randn(*lead, 1, generator=g, dtype=dtype),
    }
