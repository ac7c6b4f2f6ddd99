"""Keyword-tensor actor and critic wrappers (TorchRL's ``ProbabilisticActor``/``ValueOperator``).

The wrapped ``nn.Module`` is a plain module taking the ``in_keys`` tensors positionally, so the
very same instance can also be wrapped by TorchRL (``TensorDictModule(module, in_keys,
out_keys)`` inside ``torchrl.modules.ProbabilisticActor`` / ``ValueOperator``) and both wrappers
share weights.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from numbers import Number
from typing import Any

import torch
from torch import nn

from rlexport.inputs import (
    NestedKey,
    check_keywords,
    check_network_dtype,
    check_tensor,
    choice,
    constant_like,
    flatten_key,
    parameter_dtype,
)
from rlexport.modules.distributions import (
    Categorical,
    Delta,
    IndependentNormal,
    OneHotCategorical,
    TanhNormal,
    softplus,
)

__all__ = [
    "NormalParamExtractor",
    "ProbabilisticActor",
    "ValueOperator",
    "biased_softplus",
    "mappings",
    "inv_softplus",
    "INTERACTION_TYPES",
]


# --------------------------------------------------------------------------------------------
# Scale mappings (tensordict.nn.utils.mappings)
# --------------------------------------------------------------------------------------------
def inv_softplus(bias: float) -> float:
    """tensordict's ``inv_softplus`` for a Python number: computed in float32 as tensordict does
    (``torch.tensor(bias).expm1().clamp_min(1e-6).log().item()``), so biases match bit for bit."""
    return torch.tensor(float(bias)).expm1().clamp_min(1e-6).log().item()


class biased_softplus(nn.Module):
    """``softplus(x + b) + min_val`` with ``b`` chosen so that ``f(0) = bias`` (tensordict's)."""

    def __init__(self, bias: float, min_val: float = 0.01) -> None:
        super().__init__()
        self.bias = inv_softplus(bias - min_val)
        self.min_val = min_val

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return softplus(x + constant_like(self.bias, x)) + constant_like(self.min_val, x)


def _expln(x: torch.Tensor) -> torch.Tensor:
    zero = torch.zeros_like(x)
    return torch.where(x <= 0, torch.exp(torch.clamp(x, max=zero)), torch.log1p(torch.clamp(x, min=zero)) + 1)


def mappings(key: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """tensordict's ``mappings``: ``softplus``, ``exp``, ``relu``, ``none``, ``expln``,
    ``biased_softplus``, ``biased_softplus_{bias}`` or ``biased_softplus_{bias}_{min_val}``."""
    simple = {
        "softplus": softplus,
        "exp": torch.exp,
        "relu": torch.relu,
        "none": lambda x: x,
        "expln": _expln,
        "biased_softplus": biased_softplus(1.0),
    }
    if key in simple:
        return simple[key]
    if isinstance(key, str) and key.startswith("biased_softplus"):
        parts = key.split("_")
        if len(parts) == 3:
            return biased_softplus(float(parts[2]))
        if len(parts) == 4:
            return biased_softplus(float(parts[2]), min_val=float(parts[3]))
        raise ValueError(f"mappings: invalid number of arguments in {key!r}")
    raise ValueError(
        f"mappings: scale_mapping={key!r} is not supported; choose one of {list(simple)} "
        "or 'biased_softplus_{bias}[_{min_val}]'"
    )


class NormalParamExtractor(nn.Module):
    """tensordict's ``NormalParamExtractor``: split the last dim into ``(loc, scale)``.

    ``scale = mapping(scale).clamp_min(scale_lb)``; extra positional inputs pass through.
    """

    def __init__(self, scale_mapping: str = "biased_softplus_1.0", scale_lb: Number = 1e-4) -> None:
        super().__init__()
        self.scale_mapping_name = scale_mapping
        self.scale_mapping = mappings(scale_mapping)
        self.scale_lb = scale_lb

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        tensor, *others = tensors
        loc, scale = tensor.chunk(2, -1)
        scale = torch.clamp(self.scale_mapping(scale), min=constant_like(self.scale_lb, scale))
        return (loc, scale, *others)

    def extra_repr(self) -> str:
        return f"scale_mapping={self.scale_mapping_name!r}, scale_lb={self.scale_lb}"


# --------------------------------------------------------------------------------------------
# Actor
# --------------------------------------------------------------------------------------------
INTERACTION_TYPES = ("deterministic", "random", "mode", "mean")

_DEFAULT_PARAM_KEYS = {
    Categorical: ["logits"],
    OneHotCategorical: ["logits"],
    IndependentNormal: ["loc", "scale"],
    TanhNormal: ["loc", "scale"],
    Delta: ["param"],
}


def _keys(owner: str, name: str, keys) -> list[str]:
    if isinstance(keys, (str, tuple)):
        keys = [keys]
    if not isinstance(keys, Sequence) or not len(keys):
        raise TypeError(f"{owner}: {name} must be a non-empty list of keys, got {keys!r}")
    return [flatten_key(k) for k in keys]


def _as_tuple(out: Any) -> tuple:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def interaction_action(dist, kind: str, draw: Callable[[], Any]):
    """The action of interaction type ``kind`` (:data:`INTERACTION_TYPES`): the distribution's
    ``deterministic_sample``, ``mode`` or ``mean``, or ``draw()`` for ``"random"``."""
    if kind == "deterministic":
        return dist.deterministic_sample
    if kind == "mode":
        return dist.mode
    if kind == "mean":
        return dist.mean
    return draw()


def check_module(owner: str, module: Any) -> nn.Module:
    """``module`` if it is an ``nn.Module``, else a one-line ``TypeError`` naming its type."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"{owner}: module must be an nn.Module, got {type(module).__name__}")
    return module


class ProbabilisticActor(nn.Module):
    """A policy over keyword tensors, TorchRL's ``ProbabilisticActor`` without TensorDicts.

    Args:
        module: any ``nn.Module`` called as ``module(*[inputs[k] for k in in_keys])``, returning
            the distribution parameters named by ``out_keys`` (one tensor or a tuple), e.g.
            ``nn.Sequential(mlp, NormalParamExtractor())`` → ``(loc, scale)``.
        in_keys: the module's inputs (keyword names; nested TorchRL keys are flattened).
        out_keys: the module's outputs = the distribution's keyword arguments. Default:
            ``["logits"]`` for (OneHot)Categorical, ``["loc", "scale"]`` for normals,
            ``["param"]`` for Delta.
        distribution_class: a class of ``rlexport.modules.distributions`` (default ``Delta``,
            as TorchRL).
        distribution_kwargs: extra constructor keywords (e.g. ``{"low": -2.0, "high": 2.0}``).
        return_log_prob: ``forward`` also returns ``log_prob(action)``.
        log_prob_key: name of that output. Default ``f"{action_key}_log_prob"`` =
            ``"action_log_prob"``: what TorchRL 0.14.1 writes (``composite_lp_aggregate()`` is
            ``False`` by default there), and the default ``sample_log_prob`` key of its losses.
        action_key: name of the action output.
        default_interaction_type: ``"deterministic"`` (TorchRL's default: the distribution's
            ``deterministic_sample``), ``"random"``, ``"mode"`` or ``"mean"``.

    ``actor(**inputs)`` → action, or ``(action, log_prob)`` with ``return_log_prob``.
    ``actor(**inputs, noise=eps)`` draws a random action from the given noise (``rsample`` when
    the distribution has one, else ``sample``) whatever the interaction type: reproducible and
    exportable sampling.
    """

    def __init__(
        self,
        module: nn.Module,
        in_keys: Sequence[NestedKey] | NestedKey,
        out_keys: Sequence[NestedKey] | NestedKey | None = None,
        distribution_class: type = Delta,
        distribution_kwargs: Mapping[str, Any] | None = None,
        return_log_prob: bool = False,
        log_prob_key: NestedKey | None = None,
        action_key: NestedKey = "action",
        default_interaction_type: str = "deterministic",
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.module = check_module(owner, module)
        self.in_keys = _keys(owner, "in_keys", in_keys)
        if out_keys is None:
            if distribution_class not in _DEFAULT_PARAM_KEYS:
                raise TypeError(
                    f"{owner}: out_keys is required for distribution_class={distribution_class!r}"
                )
            out_keys = _DEFAULT_PARAM_KEYS[distribution_class]
        self.out_keys = _keys(owner, "out_keys", out_keys)
        self.distribution_class = distribution_class
        self.distribution_kwargs = dict(distribution_kwargs or {})
        self.return_log_prob = bool(return_log_prob)
        self.action_key = flatten_key(action_key)
        self.log_prob_key = flatten_key(log_prob_key) if log_prob_key is not None else self.action_key + "_log_prob"
        self.default_interaction_type = choice(
            owner, "default_interaction_type", default_interaction_type, INTERACTION_TYPES
        )

    @property
    def output_keys(self) -> list[str]:
        """Names of ``forward``'s outputs: ``[action_key]`` (+ ``log_prob_key``)."""
        return [self.action_key] + ([self.log_prob_key] if self.return_log_prob else [])

    def _inputs(self, inputs: Mapping[str, Any]) -> list[torch.Tensor]:
        owner = type(self).__name__
        check_keywords(owner, inputs, self.in_keys)
        args = [check_tensor(owner, k, inputs[k]) for k in self.in_keys]
        check_network_dtype(owner, inputs, self.in_keys, parameter_dtype(self.module))
        return args

    def dist_params(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{out_key: tensor}`` as returned by the wrapped module."""
        return self._params(self.module(*self._inputs(inputs)))

    def _params(self, module_output: Any) -> dict[str, torch.Tensor]:
        out = _as_tuple(module_output)
        if len(out) < len(self.out_keys):
            raise ValueError(
                f"{type(self).__name__}: the module returned {len(out)} tensor(s) but out_keys "
                f"names {len(self.out_keys)}: {self.out_keys}"
            )
        return dict(zip(self.out_keys, out))

    def build_dist(self, params: Mapping[str, torch.Tensor]):
        """The distribution from already computed parameters (``dist_params`` output)."""
        return self.distribution_class(**params, **self.distribution_kwargs)

    def get_dist(self, **inputs: torch.Tensor):
        """The action distribution at ``inputs``."""
        return self.build_dist(self.dist_params(**inputs))

    def get_dist_from(self, inputs: Mapping[str, Any]):
        """:meth:`get_dist` reading the ``in_keys`` from a mapping that may hold other entries
        too (a loss's whole keyword input): no per-call keyword dict."""
        args = [inputs.get(k) for k in self.in_keys]
        if not all(type(a) is torch.Tensor for a in args):  # a missing key, a None or a subclass
            args = self._inputs({k: inputs.get(k) for k in self.in_keys})  # raises, naming the key
        check_network_dtype(type(self).__name__, inputs, self.in_keys, parameter_dtype(self.module))
        return self.build_dist(self._params(self.module(*args)))

    def _action(self, dist, noise):
        if noise is not None:
            return dist.rsample(noise=noise) if dist.has_rsample else dist.sample(noise=noise)
        return interaction_action(dist, self.default_interaction_type,
                                  lambda: dist.rsample() if dist.has_rsample else dist.sample())

    def forward(self, *, noise: torch.Tensor | None = None, **inputs: torch.Tensor):
        dist = self.get_dist(**inputs)
        action = self._action(dist, noise)
        if self.return_log_prob:
            return action, dist.log_prob(action)
        return action

    def extra_repr(self) -> str:
        return (
            f"in_keys={self.in_keys}, out_keys={self.out_keys}, "
            f"distribution_class={getattr(self.distribution_class, '__name__', self.distribution_class)}, "
            f"distribution_kwargs={self.distribution_kwargs}, return_log_prob={self.return_log_prob}, "
            f"log_prob_key={self.log_prob_key!r}, action_key={self.action_key!r}, "
            f"default_interaction_type={self.default_interaction_type!r}"
        )


# --------------------------------------------------------------------------------------------
# Critic
# --------------------------------------------------------------------------------------------
class ValueOperator(nn.Module):
    """TorchRL's ``ValueOperator`` over keyword tensors.

    Defaults as TorchRL: ``in_keys=["observation"]``; ``out_keys=["state_value"]``, or
    ``["state_action_value"]`` when ``"action"`` is an input. ``critic(**inputs)`` returns the
    module's output (``[*batch, 1]`` for a value head), a tuple when there are several out_keys.
    """

    def __init__(
        self,
        module: nn.Module,
        in_keys: Sequence[NestedKey] | NestedKey | None = None,
        out_keys: Sequence[NestedKey] | NestedKey | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.module = check_module(owner, module)
        self.in_keys = _keys(owner, "in_keys", ["observation"] if in_keys is None else in_keys)
        if out_keys is None:
            out_keys = ["state_action_value"] if "action" in self.in_keys else ["state_value"]
        self.out_keys = _keys(owner, "out_keys", out_keys)

    def forward(self, **inputs: torch.Tensor):
        owner = type(self).__name__
        check_keywords(owner, inputs, self.in_keys)
        args = [check_tensor(owner, k, inputs[k]) for k in self.in_keys]
        check_network_dtype(owner, inputs, self.in_keys, parameter_dtype(self.module))
        out = self.module(*args)
        if len(self.out_keys) == 1:
            return out[0] if isinstance(out, (tuple, list)) else out
        return tuple(out)[: len(self.out_keys)]

    def extra_repr(self) -> str:
        return f"in_keys={self.in_keys}, out_keys={self.out_keys}"
