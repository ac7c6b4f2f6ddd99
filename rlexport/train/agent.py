"""The actor-critic that ``rlexport train`` optimises, built from rlexport's modules.

Networks follow CleanRL: two hidden layers of 64 with tanh, orthogonal init (gain sqrt(2), actor
head 0.01, critic head 1.0), and for Box actions a state-independent log-std parameter (init 0).

Box actions, two choices (``--box-distribution``):

* ``normal`` (default, as CleanRL's ``ppo_continuous_action.py``): ``IndependentNormal``; the
  sampled action is stored and scored unclipped, and clipped to the space's ``[low, high]`` only
  when it is sent to the environment.
* ``tanh_normal``: ``TanhNormal`` with the space's ``low``/``high``: actions are inside the bounds
  by construction and their log-probability includes the tanh Jacobian. It has no closed-form
  entropy, so use it with ``--ent-coef 0``.

Acting samples with noise drawn outside the graph by the trainer's numpy generator (uniform noise
for ``Categorical``, inverse CDF, standard normal for the Gaussians), so the torch and ONNX engines act
identically from the same parameters and a resumed run reproduces its samples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

import gymnasium as gym
from rlexport.modules import Categorical, IndependentNormal, ProbabilisticActor, TanhNormal, ValueOperator, mlp


class GaussianHead(nn.Module):
    """obs -> ``(loc, scale)`` with a state-independent log-std (CleanRL)."""

    def __init__(self, obs_dim: int, hidden: Sequence[int], act_dim: int):
        super().__init__()
        self.net = mlp(obs_dim, act_dim, hidden=hidden, head_gain=0.01)
        self.log_std = nn.Parameter(torch.zeros(act_dim))

    def forward(self, observation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc = self.net(observation)
        scale = self.log_std.exp().expand_as(loc)
        return loc, scale


class AgentSpec:
    """What the rest of training needs to know about the action space."""

    def __init__(self, obs_dim: int, action_space, box_distribution: str):

        self.obs_dim = obs_dim
        if isinstance(action_space, gym.spaces.Discrete):
            self.kind = "categorical"
            self.n = int(action_space.n)
            self.act_dim = 1
            self.low = self.high = None
        else:
            self.kind = box_distribution  # "normal" | "tanh_normal"
            self.act_dim = int(action_space.shape[0])
            self.n = None
            self.low = np.asarray(action_space.low, np.float32)
            self.high = np.asarray(action_space.high, np.float32)

    @property
    def discrete(self) -> bool:
        return self.kind == "categorical"

    def noise_shape(self, batch: int, steps: int | None = None) -> tuple[int, ...]:
        lead = (batch,) if steps is None else (steps, batch)
        return lead if self.discrete else (*lead, self.act_dim)

    def draw_noise(self, rng: np.random.Generator, batch: int, steps: int | None = None) -> np.ndarray:
        """Sampling noise ``[batch]`` (Categorical: uniform) or ``[batch, act_dim]`` (Gaussians:
        standard normal); with ``steps``, a whole rollout's ``[steps, batch, ...]`` in one draw
        (the generator fills it in order, so row ``t`` is what the ``t``-th per-step draw gives)."""
        if self.discrete:  # uniform: Categorical.sample(noise=u) inverts the CDF
            return rng.random(self.noise_shape(batch, steps)).astype(np.float32)
        return rng.standard_normal(self.noise_shape(batch, steps)).astype(np.float32)

    def env_action(self, action: np.ndarray) -> np.ndarray:
        if self.discrete:
            return action.astype(np.int64).reshape(-1)
        return np.clip(action, self.low, self.high)


def build_agent(spec: AgentSpec, hidden: Sequence[int], seed: int, dtype: torch.dtype = torch.float32):
    """``(actor, critic)``: rlexport ``ProbabilisticActor`` and ``ValueOperator``."""
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        if spec.discrete:
            actor_net: nn.Module = mlp(spec.obs_dim, spec.n, hidden=hidden, head_gain=0.01)
            actor = ProbabilisticActor(
                actor_net, in_keys=["observation"], out_keys=["logits"], distribution_class=Categorical,
                distribution_kwargs={}, return_log_prob=True,
            )
        else:
            actor_net = GaussianHead(spec.obs_dim, hidden, spec.act_dim)
            if spec.kind == "tanh_normal":
                cls, kwargs = TanhNormal, {"low": torch.as_tensor(spec.low), "high": torch.as_tensor(spec.high)}
            else:
                cls, kwargs = IndependentNormal, {}
            actor = ProbabilisticActor(
                actor_net, in_keys=["observation"], out_keys=["loc", "scale"], distribution_class=cls,
                distribution_kwargs=kwargs, return_log_prob=True,
            )
        critic = ValueOperator(mlp(spec.obs_dim, 1, hidden=hidden, head_gain=1.0), in_keys=["observation"], out_keys=["state_value"])
    finally:
        torch.random.set_rng_state(gen_state)
    return actor.to(dtype), critic.to(dtype)


class Sampler(nn.Module):
    """``(observation, noise) -> (action, sample_log_prob)``: one acting step, noise given."""

    def __init__(self, actor: nn.Module, kind: str):
        super().__init__()
        self.actor_network = actor  # the loss's attribute name: parameter names match the loss's
        self.kind = kind
        self.in_keys = ["observation", "noise"]
        self.out_keys = ["action", "sample_log_prob"]

    def forward(self, observation: torch.Tensor, noise: torch.Tensor):
        dist = self.actor_network.get_dist(observation=observation)
        if self.kind == "categorical":
            action = dist.sample(noise=noise)
        else:
            action = dist.rsample(noise=noise)
        return action, dist.log_prob(action)


class DeterministicPolicy(nn.Module):
    """The deployable policy: raw observation -> greedy action, normalisation baked in."""

    def __init__(self, actor: nn.Module, kind: str, obs_mean=None, obs_std=None, clip: float = 10.0,
                 low=None, high=None):
        super().__init__()
        self.actor = actor
        self.kind = kind
        self.normalize = obs_mean is not None
        if self.normalize:
            self.register_buffer("obs_mean", torch.as_tensor(np.asarray(obs_mean), dtype=torch.float32))
            self.register_buffer("obs_std", torch.as_tensor(np.asarray(obs_std), dtype=torch.float32))
            self.register_buffer("obs_clip", torch.tensor(float(clip)))
        self.clip_box = kind == "normal"
        if self.clip_box:
            self.register_buffer("low", torch.as_tensor(low))
            self.register_buffer("high", torch.as_tensor(high))
        self.in_keys = ["observation"]
        self.out_keys = ["action"]

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            observation = torch.clamp((observation - self.obs_mean) / self.obs_std, -self.obs_clip, self.obs_clip)
        dist = self.actor.get_dist(observation=observation)
        if self.kind == "categorical":
            return dist.mode
        action = dist.deterministic_sample
        if self.clip_box:
            action = torch.maximum(torch.minimum(action, self.high), self.low)
        return action
