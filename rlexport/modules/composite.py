"""Composite (multi-head) action distributions and the actor that builds them.

TorchRL's ``tensordict.nn.CompositeDistribution`` without TensorDicts: an ordered mapping
``head -> distribution`` (any of :mod:`rlexport.modules.distributions`), e.g. a discrete choice
plus a bounded continuous parameter. Actions, log-probabilities and entropies are ordered
``{head: tensor}`` dicts; the aggregated log-probability / entropy is their sum over heads
(event dims are already summed by each head).

Flat keyword names (rlexport's keys are TorchRL's nested keys joined with ``_``; TorchRL side
with ``name_map={h: ("action", h)}``):

- ``("params", h, "logits")`` -> ``params_<h>_logits`` (each head's parameters likewise);
- ``("action", h)`` -> ``action_<h>``;
- ``("action", f"{h}_log_prob")`` -> ``action_<h>_log_prob`` (per head, TorchRL's default);
- ``"sample_log_prob"`` -> ``sample_log_prob`` (aggregated: the sum over heads).

Randomness is an explicit input per head (``noise={h: tensor}``, the head's own noise layout:
uniform ``[*batch]`` for Categorical, standard normal ``[*batch, *event]`` for the normals);
without it the torch RNG is used (eager only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from rlexport.inputs import (
    InputError,
    NestedKey,
    check_keywords,
    check_network_dtype,
    check_tensor,
    choice,
    flatten_key,
    parameter_dtype,
)
from rlexport.modules.actors import INTERACTION_TYPES, NormalParamExtractor, _keys, check_module, interaction_action
from rlexport.modules.distributions import (
    Categorical,
    Delta,
    Distribution,
    IndependentNormal,
    OneHotCategorical,
    TanhNormal,
    entropy_or_estimate,
)

__all__ = ["CompositeDistribution", "CompositeActor", "CompositeParamExtractor", "DEFAULT_PARAM_NAMES"]

#: The keyword arguments of each distribution's parameters (TorchRL's usual names).
DEFAULT_PARAM_NAMES: dict[type, tuple[str, ...]] = {
    Categorical: ("logits",),
    OneHotCategorical: ("logits",),
    IndependentNormal: ("loc", "scale"),
    TanhNormal: ("loc", "scale"),
    Delta: ("param",),
}


def _check_heads(owner: str, heads: Sequence[str]) -> list[str]:
    heads = list(heads)
    if not heads:
        raise InputError(f"{owner}: give at least one head")
    for head in heads:
        if not isinstance(head, str) or not head.isidentifier():
            raise InputError(f"{owner}: head name {head!r} must be a Python identifier (it becomes part of keyword names)")
    return heads


class CompositeDistribution(Distribution):
    """Named heads over one batch shape (TorchRL's ``CompositeDistribution``).

    Args:
        dists: ordered ``{head: distribution}``; every head has the same ``batch_shape``.

    ``log_prob_composite(actions)`` / ``entropy_composite()`` give ``{head: [*batch]}``;
    ``log_prob`` / ``entropy`` their sums (TorchRL's aggregated mode). ``sample`` /
    ``rsample`` / ``mode`` / ``deterministic_sample`` give ``{head: action}``.
    ``has_rsample`` is true when every head has it.
    """

    action_dtype = None

    def __init__(self, dists: Mapping[str, Distribution]):
        owner = type(self).__name__
        if not isinstance(dists, Mapping):
            raise TypeError(f"{owner}: dists must be a mapping head -> distribution, got {type(dists).__name__}")
        self.heads = _check_heads(owner, list(dists))
        self.dists = dict(dists)
        shapes = {h: tuple(d.batch_shape) for h, d in self.dists.items()}
        first = shapes[self.heads[0]]
        for head, shape in shapes.items():
            if shape != first:
                raise InputError(
                    f"{owner}: head {head!r} has batch shape {list(shape)} but head {self.heads[0]!r} has "
                    f"{list(first)}; every head must share one batch shape"
                )
        self.batch_shape = torch.Size(first)
        self.event_shape = torch.Size()
        self.has_rsample = all(d.has_rsample for d in self.dists.values())

    def __getitem__(self, head: str) -> Distribution:
        return self.dists[head]

    def _check_actions(self, what: str, values: Mapping[str, torch.Tensor]) -> None:
        missing = [h for h in self.heads if h not in values or values[h] is None]
        if missing:
            raise InputError(f"{type(self).__name__}.{what}: missing head {missing[0]!r}; heads: {self.heads}")

    def log_prob_composite(self, actions: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{head: log p_head(actions[head])}``, each ``[*batch]`` (or with leading sample dims)."""
        self._check_actions("log_prob", actions)
        return {h: self.dists[h].log_prob(actions[h]) for h in self.heads}

    def log_prob(self, actions: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The summed log-probability over heads."""
        return _sum_heads(self.log_prob_composite(actions))

    def entropy_composite(self, samples_mc: int = 1, noise: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """``{head: entropy}``, ``[*batch]``: closed form where the head has one, else TorchRL's
        Monte-Carlo ``-mean_s log p(x_s)`` from ``samples_mc`` reparameterised draws
        (``noise[head]``: ``[samples_mc, *batch, *event]``)."""
        noise = noise or {}
        return {h: entropy_or_estimate(self.dists[h], samples_mc, noise.get(h)) for h in self.heads}

    def entropy(self, samples_mc: int = 1, noise: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """The summed entropy over heads."""
        return _sum_heads(self.entropy_composite(samples_mc, noise))

    def sample(self, sample_shape=torch.Size(), noise: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        noise = noise or {}
        return {h: self.dists[h].sample(sample_shape, noise=noise.get(h)) for h in self.heads}

    def rsample(self, sample_shape=torch.Size(), noise: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        noise = noise or {}
        return {h: self.dists[h].rsample(sample_shape, noise=noise.get(h)) for h in self.heads}

    def draw(self, noise: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """One action per head: ``rsample`` for heads that have it, else ``sample``."""
        noise = noise or {}
        return {
            h: (d.rsample(noise=noise.get(h)) if d.has_rsample else d.sample(noise=noise.get(h)))
            for h, d in self.dists.items()
        }

    @property
    def mode(self) -> dict[str, torch.Tensor]:
        return {h: d.mode for h, d in self.dists.items()}

    @property
    def deterministic_sample(self) -> dict[str, torch.Tensor]:
        return {h: d.deterministic_sample for h, d in self.dists.items()}

    @property
    def mean(self) -> dict[str, torch.Tensor]:
        return {h: d.mean for h, d in self.dists.items()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{h}={d!r}' for h, d in self.dists.items())})"


def _sum_heads(values: Mapping[str, torch.Tensor]) -> torch.Tensor:
    total = None
    for value in values.values():
        total = value if total is None else total + value
    return total


class CompositeParamExtractor(nn.Module):
    """Split the last dim of one network output into per-head parameters.

    Args:
        sizes: ordered ``{head: (distribution_class, size)}``: ``size`` categories for
            (OneHot)Categorical (``size`` logits), the action dim for the normals (``2*size``
            outputs: ``loc`` then a pre-scale mapped by ``scale_mapping`` as
            :class:`~rlexport.modules.NormalParamExtractor`), the action dim for Delta.
        scale_mapping, scale_lb: as :class:`~rlexport.modules.NormalParamExtractor`.

    ``forward(x)`` with ``x`` ``[*batch, width]`` (``width`` = :attr:`width`) returns the
    parameters as a tuple in head order (each head's :data:`DEFAULT_PARAM_NAMES` order): what
    :class:`CompositeActor` expects of its module.
    """

    def __init__(self, sizes: Mapping[str, tuple[type, int]], scale_mapping: str = "biased_softplus_1.0",
                 scale_lb: float = 1e-4) -> None:
        super().__init__()
        owner = type(self).__name__
        _check_heads(owner, list(sizes))
        self.sizes = {}
        for head, spec in sizes.items():
            cls, size = spec
            if cls not in DEFAULT_PARAM_NAMES:
                raise InputError(f"{owner}: head {head!r}: distribution {cls!r} is not one of {[c.__name__ for c in DEFAULT_PARAM_NAMES]}")
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise InputError(f"{owner}: head {head!r}: size={size!r} must be an int >= 1")
            self.sizes[head] = (cls, size)
        self.normal = NormalParamExtractor(scale_mapping, scale_lb)

    @property
    def width(self) -> int:
        """The network output width this extractor splits."""
        return sum(2 * n if len(DEFAULT_PARAM_NAMES[c]) == 2 else n for c, n in self.sizes.values())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if x.shape[-1] != self.width:
            raise InputError(f"{type(self).__name__}: input has {x.shape[-1]} features but the heads need {self.width}")
        out: list[torch.Tensor] = []
        start = 0
        for cls, n in self.sizes.values():
            if len(DEFAULT_PARAM_NAMES[cls]) == 2:
                loc, scale = self.normal(x[..., start : start + 2 * n])
                out += [loc, scale]
                start += 2 * n
            else:
                out.append(x[..., start : start + n])
                start += n
        return tuple(out)


class CompositeActor(nn.Module):
    """A multi-head policy over keyword tensors (TorchRL's ``ProbabilisticActor`` with a
    ``CompositeDistribution``).

    Args:
        module: an ``nn.Module`` called as ``module(*[inputs[k] for k in in_keys])`` returning
            every head's parameters as one tuple, in ``out_keys`` order (e.g.
            ``nn.Sequential(mlp, CompositeParamExtractor(...))``).
        in_keys: the module's inputs.
        distribution_map: ordered ``{head: distribution class}``.
        distribution_kwargs: ``{head: extra constructor keywords}`` (e.g. TanhNormal bounds).
        out_keys: the parameter keyword names, default ``params_<head>_<param>`` for each head
            and each of its parameters (TorchRL's ``("params", head, param)`` flattened).
        return_log_prob: ``forward`` also returns log-probabilities: per head
            (``action_<head>_log_prob``, TorchRL's default non-aggregated mode) or, with
            ``aggregate_log_prob=True``, their sum as ``log_prob_key``.
        log_prob_key: the aggregated log-prob's name (default ``"sample_log_prob"``, as TorchRL's
            ``CompositeDistribution.log_prob_key``).
        action_key: the actions are ``f"{action_key}_{head}"``.
        default_interaction_type: as :class:`~rlexport.modules.ProbabilisticActor`.

    ``actor(**inputs)`` returns the actions in head order (then the log-prob(s)), see
    :attr:`output_keys`. Sampling noise is an explicit keyword per head, ``noise_<head>``; when
    any is given every head is drawn from noise (``rsample`` where the head has it).
    """

    def __init__(
        self,
        module: nn.Module,
        in_keys: Sequence[NestedKey] | NestedKey,
        distribution_map: Mapping[str, type],
        distribution_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
        out_keys: Sequence[NestedKey] | None = None,
        return_log_prob: bool = False,
        aggregate_log_prob: bool = False,
        log_prob_key: NestedKey = "sample_log_prob",
        action_key: NestedKey = "action",
        default_interaction_type: str = "deterministic",
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.module = check_module(owner, module)
        if not isinstance(distribution_map, Mapping):
            raise TypeError(f"{owner}: distribution_map must be a mapping head -> distribution class")
        self.in_keys = _keys(owner, "in_keys", in_keys)
        self.heads = _check_heads(owner, list(distribution_map))
        self.distribution_map = dict(distribution_map)
        kwargs = dict(distribution_kwargs or {})
        unknown = [h for h in kwargs if h not in self.distribution_map]
        if unknown:
            raise InputError(f"{owner}: distribution_kwargs names unknown head {unknown[0]!r}; heads: {self.heads}")
        self.distribution_kwargs = {h: dict(kwargs.get(h) or {}) for h in self.heads}
        self.param_names: dict[str, tuple[str, ...]] = {}
        for head, cls in self.distribution_map.items():
            if cls not in DEFAULT_PARAM_NAMES:
                raise InputError(f"{owner}: head {head!r}: distribution {cls!r} is not one of {[c.__name__ for c in DEFAULT_PARAM_NAMES]}")
            self.param_names[head] = DEFAULT_PARAM_NAMES[cls]
        default_out = [f"params_{h}_{p}" for h in self.heads for p in self.param_names[h]]
        self.out_keys = default_out if out_keys is None else _keys(owner, "out_keys", out_keys)
        if len(self.out_keys) != len(default_out):
            raise InputError(f"{owner}: out_keys names {len(self.out_keys)} parameters but the heads take {len(default_out)}: {default_out}")
        self.return_log_prob = bool(return_log_prob)
        self.aggregate_log_prob = bool(aggregate_log_prob)
        self.action_key = flatten_key(action_key)
        self.log_prob_key = flatten_key(log_prob_key)
        self.default_interaction_type = choice(owner, "default_interaction_type", default_interaction_type, INTERACTION_TYPES)
        self.distribution_class = CompositeDistribution

    # ---------------------------------------------------------------- names
    @property
    def action_keys(self) -> dict[str, str]:
        """``{head: action keyword}``: ``action_<head>``."""
        return {h: f"{self.action_key}_{h}" for h in self.heads}

    @property
    def log_prob_keys(self) -> dict[str, str]:
        """``{head: per-head log-prob keyword}``: ``action_<head>_log_prob``."""
        return {h: f"{self.action_key}_{h}_log_prob" for h in self.heads}

    @property
    def noise_keys(self) -> dict[str, str]:
        """``{head: sampling-noise keyword}``: ``noise_<head>``."""
        return {h: f"noise_{h}" for h in self.heads}

    @property
    def dist_param_keys(self) -> list[str]:
        return list(self.out_keys)

    @property
    def output_keys(self) -> list[str]:
        """Names of ``forward``'s outputs: the actions, then the log-prob(s) if asked."""
        keys = list(self.action_keys.values())
        if self.return_log_prob:
            keys += [self.log_prob_key] if self.aggregate_log_prob else list(self.log_prob_keys.values())
        return keys

    # ---------------------------------------------------------------- distribution
    def _params(self, module_output: Any) -> dict[str, torch.Tensor]:
        out = tuple(module_output) if isinstance(module_output, (tuple, list)) else (module_output,)
        if len(out) != len(self.out_keys):
            raise InputError(
                f"{type(self).__name__}: the module returned {len(out)} tensor(s) but out_keys names "
                f"{len(self.out_keys)}: {self.out_keys}"
            )
        return dict(zip(self.out_keys, out))

    def build_dist(self, params: Mapping[str, torch.Tensor]) -> CompositeDistribution:
        """The distribution from flat parameters ``{out_key: tensor}``."""
        owner = type(self).__name__
        keys = iter(self.out_keys)
        dists = {}
        for head in self.heads:
            head_params = {}
            for name in self.param_names[head]:
                key = next(keys)
                if params.get(key) is None:
                    raise InputError(f"{owner}: missing distribution parameter {key!r} (head {head!r})")
                head_params[name] = params[key]
            dists[head] = self.distribution_map[head](**head_params, **self.distribution_kwargs[head])
        return CompositeDistribution(dists)

    def _inputs(self, inputs: Mapping[str, Any]) -> list[torch.Tensor]:
        owner = type(self).__name__
        check_keywords(owner, {k: inputs.get(k) for k in self.in_keys}, self.in_keys)
        args = [check_tensor(owner, k, inputs[k]) for k in self.in_keys]
        check_network_dtype(owner, inputs, self.in_keys, parameter_dtype(self.module))
        return args

    def dist_params(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        return self._params(self.module(*self._inputs(inputs)))

    def get_dist(self, **inputs: torch.Tensor) -> CompositeDistribution:
        return self.build_dist(self.dist_params(**inputs))

    def get_dist_from(self, inputs: Mapping[str, Any]) -> CompositeDistribution:
        """:meth:`get_dist` reading the ``in_keys`` from a larger mapping (a loss's input)."""
        return self.build_dist(self._params(self.module(*self._inputs(inputs))))

    def _actions(self, dist: CompositeDistribution, noise: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if noise:
            return dist.draw(noise)
        return interaction_action(dist, self.default_interaction_type, dist.draw)

    def forward(self, **inputs: torch.Tensor):
        owner = type(self).__name__
        noise_names = self.noise_keys
        noise = {h: inputs.pop(n) for h, n in noise_names.items() if inputs.get(n) is not None}
        for name in list(inputs):
            if inputs[name] is None and name in noise_names.values():
                inputs.pop(name)
        unknown = [k for k in inputs if k not in self.in_keys]
        if unknown:
            raise TypeError(f"{owner}: unknown input {unknown[0]!r}; accepted keywords: {self.in_keys + list(noise_names.values())}")
        if noise and len(noise) != len(self.heads):
            missing = [n for h, n in noise_names.items() if h not in noise]
            raise InputError(f"{owner}: sampling noise given for some heads only; missing {missing[0]!r}")
        dist = self.get_dist(**inputs)
        actions = self._actions(dist, noise)
        out = [actions[h] for h in self.heads]
        if self.return_log_prob:
            log_probs = dist.log_prob_composite(actions)
            out += [_sum_heads(log_probs)] if self.aggregate_log_prob else [log_probs[h] for h in self.heads]
        return tuple(out)

    def extra_repr(self) -> str:
        dists = {h: c.__name__ for h, c in self.distribution_map.items()}
        return (
            f"in_keys={self.in_keys}, distribution_map={dists}, out_keys={self.out_keys}, "
            f"return_log_prob={self.return_log_prob}, aggregate_log_prob={self.aggregate_log_prob}, "
            f"action_key={self.action_key!r}, default_interaction_type={self.default_interaction_type!r}"
        )
