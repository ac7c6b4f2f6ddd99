"""Named reference actor-critic presets (installed as ``rlexport.models.presets``).

Each preset builds an rlexport ``ProbabilisticActor`` and ``ValueOperator`` around plain
``nn.Sequential`` MLPs, CleanRL's PPO recipe: two hidden layers of 64 units, ``tanh``
activations, orthogonal weights (gain ``sqrt(2)``; actor head ``0.01``, critic head ``1.0``),
zero biases. Continuous actors output ``2 * action_dim`` numbers split by
``NormalParamExtractor`` into ``(loc, scale)``.

Weights are drawn in float32 from a private generator seeded by ``seed`` and then cast to the
requested dtype, so float32 and float64 builds with one seed hold the same numbers. The inner
modules are available as ``.actor_net``/``.critic_net`` for wrapping with TorchRL.

``example_inputs(batch, time=None)`` returns the keyword tensors of a loss call, TorchRL shapes
(``P = [*batch]`` or ``[*batch, time]``):

==================  ==================================  =========
key                 shape                               dtype
==================  ==================================  =========
observation         ``[*P, obs_dim]``                   float
action              discrete ``[*P]``; continuous       int64 /
                    ``[*P, action_dim]``                float
<log_prob_key>      ``[*P]``                            float
next_reward         ``[*P, 1]``                         float
next_done           ``[*P, 1]``                         bool
next_terminated     ``[*P, 1]``                         bool
next_observation    ``[*P, obs_dim]``                   float
==================  ==================================  =========

The log-prob key is the actor's ``log_prob_key`` (``"action_log_prob"``, what TorchRL 0.14.1
writes and its losses read by default; pass ``log_prob_key="sample_log_prob"`` to rename).
Actions are drawn from the actor itself with explicit noise and the log-prob is their
log-probability under it, so ratios start at 1. ``next_terminated`` implies ``next_done``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from rlexport.modules import (
    Categorical,
    IndependentNormal,
    NormalParamExtractor,
    ProbabilisticActor,
    TanhNormal,
    ValueOperator,
    mlp,
)

__all__ = ["Preset", "ActorCritic", "get_preset", "list_presets", "register_preset"]

HIDDEN = (64, 64)  # CleanRL: two hidden layers of 64


def _shape(batch: int | Sequence[int], time: int | None) -> tuple[int, ...]:
    prefix = (batch,) if isinstance(batch, int) else tuple(batch)
    return prefix + ((time,) if time is not None else ())


@dataclass
class ActorCritic:
    """What ``Preset.build`` returns."""

    name: str
    actor: ProbabilisticActor
    critic: ValueOperator
    obs_dim: int
    action_dim: int
    action_kind: str  # "discrete" | "continuous"
    distribution: str
    dtype: torch.dtype
    distribution_kwargs: dict = field(default_factory=dict)

    @property
    def actor_net(self) -> nn.Module:
        return self.actor.module

    @property
    def critic_net(self) -> nn.Module:
        return self.critic.module

    def example_inputs(
        self,
        batch: int | Sequence[int],
        time: int | None = None,
        *,
        seed: int = 0,
        done_prob: float = 0.05,
        log_prob_key: str | None = None,
    ) -> dict[str, torch.Tensor]:
        """Keyword tensors for a loss call (see the module docstring for shapes)."""
        shape = _shape(batch, time)
        gen = torch.Generator().manual_seed(seed)
        dt = self.dtype
        obs = torch.randn(*shape, self.obs_dim, generator=gen, dtype=dt)
        next_obs = torch.randn(*shape, self.obs_dim, generator=gen, dtype=dt)
        if time is not None:  # a trajectory: next_observation[t] = observation[t + 1]
            next_obs[..., :-1, :] = obs[..., 1:, :]
        with torch.no_grad():
            dist = self.actor.get_dist(observation=obs)
            if self.action_kind == "discrete":
                action = dist.sample(noise=torch.rand(shape, generator=gen, dtype=dt))
            else:
                noise = torch.randn(*shape, self.action_dim, generator=gen, dtype=dt)
                action = dist.sample(noise=noise)
            log_prob = dist.log_prob(action)
        done = torch.rand(*shape, 1, generator=gen) < done_prob
        terminated = done & (torch.rand(*shape, 1, generator=gen) < 0.5)
        return {
            "observation": obs,
            "action": action,
            (log_prob_key or self.actor.log_prob_key): log_prob,
            "next_reward": torch.randn(*shape, 1, generator=gen, dtype=dt),
            "next_done": done,
            "next_terminated": terminated,
            "next_observation": next_obs,
        }


@dataclass(frozen=True)
class Preset:
    """A named recipe. ``build(obs_dim=None, action_dim=None, *, dtype, seed)``."""

    name: str
    obs_dim: int
    action_dim: int
    action_kind: str
    distribution: str
    description: str
    distribution_kwargs: dict = field(default_factory=dict)

    def build(
        self,
        obs_dim: int | None = None,
        action_dim: int | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        seed: int = 0,
    ) -> ActorCritic:
        obs_dim = self.obs_dim if obs_dim is None else int(obs_dim)
        action_dim = self.action_dim if action_dim is None else int(action_dim)
        if obs_dim < 1 or action_dim < 1:
            raise ValueError(f"preset {self.name!r}: obs_dim and action_dim must be >= 1, got {obs_dim}, {action_dim}")
        if not dtype.is_floating_point:
            raise TypeError(f"preset {self.name!r}: dtype must be floating point, got {dtype}")
        gen = torch.Generator().manual_seed(seed)
        if self.action_kind == "discrete":
            actor_net = mlp(obs_dim, action_dim, hidden=HIDDEN, head_gain=0.01, generator=gen)
            out_keys = ["logits"]
        else:
            actor_net = nn.Sequential(mlp(obs_dim, 2 * action_dim, hidden=HIDDEN, head_gain=0.01, generator=gen), NormalParamExtractor())
            out_keys = ["loc", "scale"]
        critic_net = mlp(obs_dim, 1, hidden=HIDDEN, head_gain=1.0, generator=gen)
        actor_net.to(dtype)
        critic_net.to(dtype)
        actor = ProbabilisticActor(
            actor_net,
            in_keys=["observation"],
            out_keys=out_keys,
            distribution_class=_DISTRIBUTIONS[self.distribution],
            distribution_kwargs=dict(self.distribution_kwargs),
            return_log_prob=True,
        )
        critic = ValueOperator(critic_net, in_keys=["observation"], out_keys=["state_value"])
        return ActorCritic(
            name=self.name,
            actor=actor,
            critic=critic,
            obs_dim=obs_dim,
            action_dim=action_dim,
            action_kind=self.action_kind,
            distribution=self.distribution,
            dtype=dtype,
            distribution_kwargs=dict(self.distribution_kwargs),
        )


_DISTRIBUTIONS: dict[str, Callable] = {
    "Categorical": Categorical,
    "IndependentNormal": IndependentNormal,
    "TanhNormal": TanhNormal,
}

_REGISTRY: dict[str, Preset] = {}


def register_preset(preset: Preset) -> Preset:
    if preset.name in _REGISTRY:
        raise ValueError(f"preset {preset.name!r} is already registered")
    if preset.distribution not in _DISTRIBUTIONS:
        raise ValueError(f"preset {preset.name!r}: distribution {preset.distribution!r} not in {list(_DISTRIBUTIONS)}")
    _REGISTRY[preset.name] = preset
    return preset


def get_preset(name: str) -> Preset:
    """The preset called ``name``; ``KeyError`` lists the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; choose one of {list_presets()}") from None


def list_presets() -> list[str]:
    return sorted(_REGISTRY)


register_preset(Preset(
    "cartpole", obs_dim=4, action_dim=2, action_kind="discrete", distribution="Categorical",
    description="CartPole-v1: Categorical policy over 2 actions, 4 observations",
))
register_preset(Preset(
    "pendulum", obs_dim=3, action_dim=1, action_kind="continuous", distribution="TanhNormal",
    description="Pendulum-v1: TanhNormal policy, 1 torque in [-2, 2], 3 observations",
    distribution_kwargs={"low": -2.0, "high": 2.0},
))
register_preset(Preset(
    "mujoco", obs_dim=17, action_dim=6, action_kind="continuous", distribution="IndependentNormal",
    description="MuJoCo HalfCheetah-v4-sized: IndependentNormal policy, 6 actions, 17 observations",
))
