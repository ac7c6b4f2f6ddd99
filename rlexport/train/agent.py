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

Composite actions (``MultiDiscrete``, ``Dict`` and ``Tuple`` spaces of ``Discrete`` and bounded
1-D ``Box`` leaves): one network outputs every head's parameters (``CompositeHead``); the actor is
an rlexport ``CompositeActor`` with a ``Categorical`` per discrete head and the
``--box-distribution`` per Box head. Heads are named ``a0, a1, ...`` (MultiDiscrete), ``h0, h1,
...`` (Tuple) or by the Dict's keys. Inside the training loop (and in ``policy.onnx``) an action is
*packed*: one float32 row ``[*batch, width]`` with each head's columns in head order (a discrete
head: one column holding its index; a Box head: its dims), which ``AgentSpec.env_action`` turns
into the env's own action and ``AgentSpec.split_actions`` into the loss's ``action_<head>``
inputs. The loss takes the aggregated ``sample_log_prob``.

Acting samples with noise drawn outside the graph by the trainer's numpy generator (uniform noise
for ``Categorical``, inverse CDF, standard normal for the Gaussians), so the torch and ONNX engines act
identically from the same parameters and a resumed run reproduces its samples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

import gymnasium as gym
from rlexport.modules import (
    Categorical,
    CompositeActor,
    IndependentNormal,
    ProbabilisticActor,
    TanhNormal,
    ValueOperator,
    mlp,
)


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


@dataclass(frozen=True)
class Head:
    """One head of a composite action space: ``n`` categories (discrete) or a Box of ``dim``."""

    name: str
    discrete: bool
    n: int | None = None
    dim: int = 1
    low: np.ndarray | None = None
    high: np.ndarray | None = None

    @property
    def width(self) -> int:
        """Columns in a packed action / noise row."""
        return 1 if self.discrete else self.dim


class CompositeHead(nn.Module):
    """obs -> every head's parameters, in head order: ``logits`` of a discrete head, ``(loc,
    scale)`` of a Box head with a state-independent log-std (CleanRL), from one MLP."""

    def __init__(self, obs_dim: int, hidden: Sequence[int], heads: Sequence[Head]):
        super().__init__()
        self.widths = [h.n if h.discrete else h.dim for h in heads]
        self.discrete = [h.discrete for h in heads]
        self.net = mlp(obs_dim, sum(self.widths), hidden=hidden, head_gain=0.01)
        box_dims = sum(h.dim for h in heads if not h.discrete)
        # only with a Box head (an unused parameter would not be a train-step input)
        self.log_std = nn.Parameter(torch.zeros(box_dims)) if box_dims else None

    def forward(self, observation: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out: list[torch.Tensor] = []
        start = std_start = 0
        params = self.net(observation)
        for width, discrete in zip(self.widths, self.discrete):
            chunk = params[..., start:start + width]
            start += width
            if discrete:
                out.append(chunk)
            else:
                scale = self.log_std[std_start:std_start + width].exp().expand_as(chunk)
                std_start += width
                out += [chunk, scale]
        return tuple(out)


def _composite_heads(action_space) -> tuple[str, list[Head]]:
    """``(layout, heads)`` of a MultiDiscrete / Dict / Tuple space (``EnvError``-free: the spaces
    were checked by ``rlexport.train.envs.check_spaces``)."""

    def leaf(name: str, space) -> Head:
        if isinstance(space, gym.spaces.Discrete):
            return Head(name, True, n=int(space.n))
        return Head(name, False, dim=int(space.shape[0]), low=np.asarray(space.low, np.float32),
                    high=np.asarray(space.high, np.float32))

    if isinstance(action_space, gym.spaces.MultiDiscrete):
        return "multidiscrete", [Head(f"a{i}", True, n=int(n)) for i, n in enumerate(action_space.nvec)]
    if isinstance(action_space, gym.spaces.Tuple):
        return "tuple", [leaf(f"h{i}", s) for i, s in enumerate(action_space.spaces)]
    return "dict", [leaf(k, s) for k, s in action_space.spaces.items()]


class AgentSpec:
    """What the rest of training needs to know about the action space."""

    def __init__(self, obs_dim: int, action_space, box_distribution: str):

        self.obs_dim = obs_dim
        self.heads: list[Head] = []
        self.layout = None
        self.box_distribution = box_distribution
        if isinstance(action_space, (gym.spaces.MultiDiscrete, gym.spaces.Dict, gym.spaces.Tuple)):
            self.kind = "composite"
            self.layout, self.heads = _composite_heads(action_space)
            self.n = None
            self.act_dim = sum(h.width for h in self.heads)  # packed width
            lows, highs = [], []
            for h in self.heads:
                lows.append(np.zeros(1, np.float32) if h.discrete else h.low)
                highs.append(np.full(1, h.n - 1, np.float32) if h.discrete else h.high)
            self.low, self.high = np.concatenate(lows), np.concatenate(highs)
            self.discrete_columns = np.concatenate([np.full(h.width, h.discrete) for h in self.heads])
        elif isinstance(action_space, gym.spaces.Discrete):
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

    @property
    def composite(self) -> bool:
        return self.kind == "composite"

    @property
    def action_names(self) -> list[str]:
        """The loss's action keywords: ``["action"]``, or ``action_<head>`` per head."""
        return [f"action_{h.name}" for h in self.heads] if self.composite else ["action"]

    def noise_shape(self, batch: int, steps: int | None = None) -> tuple[int, ...]:
        lead = (batch,) if steps is None else (steps, batch)
        return lead if self.discrete else (*lead, self.act_dim)

    def split_actions(self, packed: np.ndarray) -> dict[str, np.ndarray]:
        """Packed actions ``[N, width]`` -> the loss's ``action_<head>`` (int64 ``[N]`` for a
        discrete head, float32 ``[N, dim]`` for a Box head)."""
        out, start = {}, 0
        for h in self.heads:
            cols = packed[..., start:start + h.width]
            start += h.width
            out[f"action_{h.name}"] = cols[..., 0].astype(np.int64) if h.discrete else np.ascontiguousarray(cols, np.float32)
        return out

    def example_actions(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """Valid example actions for ``n`` rows, as loss keywords (composite) or ``action``."""
        if self.discrete:
            return {"action": rng.integers(0, self.n, size=(n,)).astype(np.int64)}
        unit = np.clip(rng.standard_normal((n, self.act_dim)), -0.9, 0.9)
        packed = (self.low + (unit + 1) * 0.5 * (self.high - self.low)).astype(np.float32)
        if not self.composite:
            return {"action": packed if self.kind == "tanh_normal" else unit.astype(np.float32)}
        packed = np.where(self.discrete_columns, np.round(packed), packed).astype(np.float32)
        return self.split_actions(packed)

    def draw_noise(self, rng: np.random.Generator, batch: int, steps: int | None = None) -> np.ndarray:
        """Sampling noise ``[batch]`` (Categorical: uniform) or ``[batch, act_dim]`` (Gaussians:
        standard normal); with ``steps``, a whole rollout's ``[steps, batch, ...]`` in one draw
        (the generator fills it in order, so row ``t`` is what the ``t``-th per-step draw gives)."""
        if self.discrete:  # uniform: Categorical.sample(noise=u) inverts the CDF
            return rng.random(self.noise_shape(batch, steps)).astype(np.float32)
        if self.composite:  # uniform columns for the discrete heads, standard normal for the Box heads
            shape = self.noise_shape(batch, steps)
            uniform, normal = rng.random(shape), rng.standard_normal(shape)
            return np.where(self.discrete_columns, uniform, normal).astype(np.float32)
        return rng.standard_normal(self.noise_shape(batch, steps)).astype(np.float32)

    def env_action(self, action: np.ndarray):
        """The vector env's action for actions ``[num_envs, ...]`` (composite: packed rows ->
        the batched MultiDiscrete array, Tuple of arrays or Dict of arrays)."""
        if self.discrete:
            return action.astype(np.int64).reshape(-1)
        if not self.composite:
            return np.clip(action, self.low, self.high)
        parts = {}
        for h, (name, value) in zip(self.heads, self.split_actions(action).items()):
            parts[h.name] = value if h.discrete else np.clip(value, h.low, h.high)
        if self.layout == "multidiscrete":
            return np.stack(list(parts.values()), axis=-1)
        if self.layout == "tuple":
            return tuple(parts.values())
        return parts

    def single_env_action(self, action: np.ndarray):
        """``env_action`` for one env's action (no batch dim), as ``env.step`` takes it."""
        if self.discrete:
            return int(action)
        batched = self.env_action(np.asarray(action)[None])
        if self.layout == "tuple":
            return tuple(v[0] for v in batched)
        if self.layout == "dict":
            return {k: v[0] for k, v in batched.items()}
        return batched[0]


def build_agent(spec: AgentSpec, hidden: Sequence[int], seed: int, dtype: torch.dtype = torch.float32):
    """``(actor, critic)``: rlexport ``ProbabilisticActor`` and ``ValueOperator``."""
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        if spec.composite:
            box = TanhNormal if spec.box_distribution == "tanh_normal" else IndependentNormal
            dists, kwargs = {}, {}
            for h in spec.heads:
                dists[h.name] = Categorical if h.discrete else box
                if not h.discrete and box is TanhNormal:
                    kwargs[h.name] = {"low": torch.as_tensor(h.low), "high": torch.as_tensor(h.high)}
            actor = CompositeActor(CompositeHead(spec.obs_dim, hidden, spec.heads), ["observation"], dists, kwargs,
                                   return_log_prob=True, aggregate_log_prob=True)
        elif spec.discrete:
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


def pack_actions(actions: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Per-head actions -> one float32 row per batch entry (a discrete head's index as one
    column, a Box head's dims), in head order."""
    cols = [a if a.is_floating_point() else a.unsqueeze(-1).to(torch.float32) for a in actions.values()]
    return torch.cat(cols, dim=-1)


def _split_noise(noise: torch.Tensor, actor: CompositeActor) -> dict[str, torch.Tensor]:
    """A packed noise row -> per-head noise (uniform ``[B]`` for Categorical, ``[B, dim]`` else)."""
    out, start = {}, 0
    widths = actor.module.widths
    for head, width, discrete in zip(actor.heads, widths, actor.module.discrete):
        width = 1 if discrete else width
        out[head] = noise[..., start] if discrete else noise[..., start:start + width]
        start += width
    return out


def layer_forwards(module: nn.Module) -> list:
    """``module``'s computation as a flat list of ``forward`` methods to apply in turn: a plain
    ``nn.Sequential`` (its exact type, so no overridden ``forward``) is opened into its layers,
    recursively; any other module is kept whole (its ``forward``). Calling the list runs the same
    ops as ``module(x)`` minus ``nn.Module.__call__``'s per-layer dispatch, so it is only used
    when no layer has hooks (else ``[module]``). The methods are bound to the layers, so they
    see the parameters' in-place updates."""
    mods = list(module.modules())
    if any(m._forward_hooks or m._forward_pre_hooks for m in mods):
        return [module]
    if type(module) is not nn.Sequential:
        return [module.forward]
    return [f for child in module for f in layer_forwards(child)]


class Sampler(nn.Module):
    """``(observation, noise) -> (action, sample_log_prob)``: one acting step, noise given
    (composite: packed noise in, packed action and the summed log-prob out)."""

    def __init__(self, actor: nn.Module, kind: str):
        super().__init__()
        self.actor_network = actor  # the loss's attribute name: parameter names match the loss's
        self.kind = kind
        self.in_keys = ["observation", "noise"]
        self.out_keys = ["action", "sample_log_prob"]

    def forward(self, observation: torch.Tensor, noise: torch.Tensor):
        return self.draw(self.actor_network.get_dist(observation=observation), noise)

    def act(self, observation: torch.Tensor, noise: torch.Tensor, layers: Sequence | None = None):
        """``forward``'s ops without the actor wrapper's input checks (the caller passes an
        ``observation`` of the network's dtype): the torch engine's per-step call. ``layers``:
        ``layer_forwards(self.actor_network.module)``, computed once by the caller (the same ops
        without ``nn.Module.__call__`` per layer); ``None``: the module is called."""
        actor = self.actor_network
        if layers is None:
            out = actor.module(observation)
        else:
            out = observation
            for forward in layers:
                out = forward(out)
        return self.draw(actor.build_dist(actor._params(out)), noise)

    def draw(self, dist, noise: torch.Tensor):
        """``(action, sample_log_prob)`` drawn from ``dist`` with ``noise``."""
        if self.kind == "composite":
            actions = dist.draw(_split_noise(noise, self.actor_network))
            return pack_actions(actions), dist.log_prob(actions)
        if self.kind == "categorical":
            action = dist.sample(noise=noise)
            return action, dist.log_prob_of_draw(action)
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
        self.clip_box = kind in ("normal", "composite")  # composite: bounds per packed column
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
        if self.kind == "composite":
            action = pack_actions(dist.deterministic_sample)
            return torch.maximum(torch.minimum(action, self.high), self.low)
        action = dist.deterministic_sample
        if self.clip_box:
            action = torch.maximum(torch.minimum(action, self.high), self.low)
        return action
