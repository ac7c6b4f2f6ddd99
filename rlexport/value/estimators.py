"""Value-estimator modules: TorchRL 0.14.1's ``GAE``, ``TD0Estimator``, ``TD1Estimator``,
``TDLambdaEstimator`` and ``VTrace`` with keyword tensors instead of a TensorDict.

Call with TorchRL's keys flattened (``("next", "reward")`` → ``next_reward``), all ``[*batch, T, F]``
with the time axis at ``time_dim`` (default ``-2``)::

    advantage, value_target = estimator(
        next_reward=..., next_done=..., next_terminated=...,   # terminated defaults to done
        state_value=..., next_state_value=...,                  # or the value network's inputs:
        observation=..., next_observation=...,                  #   each in_key and its next_ twin
    )

``done`` (terminated or truncated) cuts the recursion; ``terminated`` masks the bootstrap.
The value network (anything with ``in_keys`` called as ``net(**{key: tensor})`` → ``[*batch, 1]``,
e.g. :class:`rlexport.modules.ValueOperator`) computes ``state_value``/``next_state_value``;
given ones are read only without a network or with ``skip_existing=True`` (TorchRL's default
recomputes them: a keyword call then refuses them by name). ``shifted=True`` runs the network
once over ``T + shifted_budget`` time slots, as TorchRL 0.14.1 does. As in TorchRL, its
parameters receive no gradient from the estimator, the next value is detached, and
``differentiable=False`` computes everything under ``torch.no_grad()``. ``est(td)`` writes the
outputs into a TensorDict (:func:`rlexport.tensordict.call_estimator`).

Differences from TorchRL (deliberate):

* ``time_dim`` counts tensor dimensions (default ``-2``, before the feature dim); TorchRL's counts
  TensorDict batch dimensions (default the last one), i.e. the same axis.
* ``gamma``/``lmbda`` given as Python floats stay exact in float64 (TorchRL stores float32 buffers);
  ``device=`` places tensor coefficients (buffers) only.
* ``skip_existing=None`` means ``False`` (TorchRL reads tensordict's global ``skip_existing()``,
  ``False`` unless set; rlexport never reads global state).
* :class:`VTrace` takes the target policy's log-prob of the *taken* action: from
  ``actor_network.get_dist(**actor_inputs).log_prob(action)`` or as the ``target_log_prob``
  keyword (TorchRL 0.14.1 evaluates the actor's log-prob of a fresh sample / its mode).
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, NamedTuple

import torch
from torch import nn

from rlexport.inputs import (
    LOG_PROB_KEYS,
    InputDtypeError,
    InputError,
    KeywordForward,
    check_keywords,
    check_network_dtype,
    check_not_empty,
    check_option,
    check_tensor,
    check_trailing_one,
    constant_like,
    flatten_key,
    next_key,
    next_or_current,
    normalize_dim,
    parameter_dtype,
    positional_tensordict,
    resolve_alias,
)
from rlexport.value import functional as F
from rlexport.value.scan import DEFAULT_MAX_STEPS

__all__ = [
    "ValueEstimators",
    "ESTIMATOR_CLASSES",
    "as_value_type",
    "default_value_kwargs",
    "ValueEstimatorBase",
    "TD0Estimator",
    "TD1Estimator",
    "TDLambdaEstimator",
    "GAE",
    "MultiAgentGAE",
    "VTrace",
]


class ValueEstimators(enum.Enum):
    """The value estimators (same members and values as TorchRL's enum)."""

    TD0 = "Bootstrapped TD (1-step return)"
    TD1 = "TD(1) (infinity-step return)"
    TDLambda = "TD(lambda)"
    GAE = "Generalized advantage estimate"
    MAGAE = "Multi-agent generalized advantage estimate"
    VTrace = "V-trace"


_DEFAULTS: dict[ValueEstimators, dict[str, Any]] = {
    ValueEstimators.TD0: {"gamma": 0.99, "differentiable": True},
    ValueEstimators.TD1: {"gamma": 0.99, "differentiable": True},
    ValueEstimators.TDLambda: {"gamma": 0.99, "lmbda": 0.95, "differentiable": True},
    ValueEstimators.GAE: {"gamma": 0.99, "lmbda": 0.95, "differentiable": True},
    ValueEstimators.MAGAE: {"gamma": 0.99, "lmbda": 0.95, "differentiable": True},
    ValueEstimators.VTrace: {"gamma": 0.99, "differentiable": True},
}


def as_value_type(value_type) -> ValueEstimators:
    """Our :class:`ValueEstimators` member for a member, its name or value (any case), or a
    member of TorchRL's own ``torchrl.objectives.utils.ValueEstimators`` (matched by name;
    TorchRL is not imported)."""
    if isinstance(value_type, ValueEstimators):
        return value_type
    if isinstance(value_type, str):
        for member in ValueEstimators:
            if value_type.lower() in (member.name.lower(), member.value.lower()):
                return member
        raise ValueError(
            f"value_type={value_type!r} is not supported; choose one of {[m.name for m in ValueEstimators]}"
        )
    name = getattr(value_type, "name", None)  # TorchRL's own enum members
    if isinstance(value_type, enum.Enum) and isinstance(name, str) and name in ValueEstimators.__members__:
        return ValueEstimators[name]
    raise TypeError(f"value_type must be a ValueEstimators member or its name, got {value_type!r}")


def default_value_kwargs(value_type) -> dict[str, Any]:
    """TorchRL's default keyword arguments for ``value_type`` (a member, its name or ``"gae"``).

    >>> default_value_kwargs(ValueEstimators.TDLambda)
    {'gamma': 0.99, 'lmbda': 0.95, 'differentiable': True}
    """
    return dict(_DEFAULTS[as_value_type(value_type)])


@dataclasses.dataclass
class _AcceptedKeys:
    advantage: str = "advantage"
    value_target: str = "value_target"
    value: str = "state_value"
    reward: str = "reward"
    done: str = "done"
    terminated: str = "terminated"
    sample_log_prob: str = "sample_log_prob"
    target_log_prob: str = "target_log_prob"
    action: str = "action"


def _coef_attr(module: nn.Module, name: str, value) -> None:
    """A Python float stays a float (exact in every dtype); a tensor becomes a buffer. Either is
    checked against :data:`rlexport.value.functional.COEF_BOUNDS` (finite, in range) here, at
    construction."""
    owner = type(module).__name__
    bounds = F.COEF_BOUNDS[name]
    if isinstance(value, torch.Tensor):
        if not value.is_floating_point():
            raise InputDtypeError(f"{owner}: {name} must be a floating-point tensor, got dtype {value.dtype}")
        for entry in value.detach().reshape(-1).tolist():  # construction time, never in forward
            check_option(owner, name, entry, **bounds)
        device = getattr(module, "_device", None)
        module.register_buffer(name, value.detach().clone().to(device) if device is not None else value.detach().clone())
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        setattr(module, name, check_option(owner, name, float(value), **bounds))
    else:
        raise TypeError(f"{owner}: {name} must be a float or a tensor, got {type(value).__name__}")


#: The output TorchRL writes with ``shifted=True``: which steps kept their place (``[*batch, T]``).
SHIFTED_VALID = "shifted_valid"


class _ShiftedLayout(NamedTuple):
    root_slot: torch.Tensor  # [*batch, T]: slot of each step's input
    next_slot: torch.Tensor  # [*batch, T]: slot of each step's next input
    valid: torch.Tensor  # [*batch, T]: both inside the budget
    last_valid: torch.Tensor  # [*batch, T]: the last valid step before an invalid one
    next_insert: torch.Tensor  # [*batch, T]: steps whose next input is written (truncations, last_valid)
    boundary_slot: torch.Tensor  # [*batch, 1]: slot of the last step's next input
    length: int | torch.SymInt  # T + shifted_budget


def _shifted_layout(done: torch.Tensor, terminated: torch.Tensor, time_axis: int, budget: int) -> _ShiftedLayout:
    """The slots of TorchRL's single-call layout from ``done``/``terminated`` ``[*batch, T, 1]``."""
    reset = done.squeeze(-1) & ~terminated.squeeze(-1)
    T = reset.shape[time_axis]
    shape = [1] * reset.ndim
    shape[time_axis] = T
    steps = torch.arange(T, device=reset.device).view(shape)
    reset = reset & (steps != T - 1)  # a truncation at the last step inserts nothing
    count = reset.to(torch.long)
    before = count.cumsum(time_axis) - count  # truncations strictly before each step
    root_slot = steps + before
    next_slot = root_slot + 1
    length = T + budget
    valid = next_slot < length
    # slots grow with t, so the valid steps are a prefix: the last kept one is the step before
    # the first displaced one (none when every step fits)
    kept = valid.to(torch.long).sum(time_axis, keepdim=True)
    last_valid = (steps == kept - 1) & (kept < T)
    boundary_slot = T + count.sum(time_axis, keepdim=True)
    return _ShiftedLayout(root_slot, next_slot, valid, last_valid, (reset & valid) | last_valid, boundary_slot, length)


def _expand_to(index: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``index`` ``[*batch, T]`` with ``like``'s trailing dims: ``[*batch, T, *rest]``."""
    return index.reshape(*index.shape, *([1] * (like.ndim - index.ndim))).expand(*index.shape, *like.shape[index.ndim:])


def _scatter_time(dest: torch.Tensor, slot: torch.Tensor, source: torch.Tensor, mask: torch.Tensor, time_axis: int, length) -> torch.Tensor:
    """``dest`` with ``source``'s steps written at ``slot`` where ``mask`` (others to a dropped sentinel slot)."""
    padded = torch.cat([dest, torch.zeros_like(dest.narrow(time_axis, 0, 1))], time_axis)
    index = torch.where(mask, slot, torch.full_like(slot, length))
    return padded.scatter(time_axis, _expand_to(index, source), source).narrow(time_axis, 0, length)


def _shifted_merge(root: torch.Tensor, nxt: torch.Tensor, layout: _ShiftedLayout, time_axis: int) -> torch.Tensor:
    """One network input ``[*batch, T + budget, *features]`` from its current and next inputs."""
    T = root.shape[time_axis]
    shape = list(root.shape)
    shape[time_axis] = layout.length
    merged = root.new_zeros(shape)
    merged = _scatter_time(merged, layout.root_slot, root, layout.root_slot < layout.length, time_axis, layout.length)
    merged = _scatter_time(merged, layout.next_slot, nxt, layout.next_insert, time_axis, layout.length)
    last = nxt.narrow(time_axis, T - 1, 1)
    return _scatter_time(merged, layout.boundary_slot, last, layout.boundary_slot < layout.length, time_axis, layout.length)


def _gather_time(values: torch.Tensor, slot: torch.Tensor, time_axis: int, length) -> torch.Tensor:
    """``values`` ``[*batch, T + budget, *rest]`` at ``slot`` ``[*batch, T]`` (clamped into range)."""
    index = slot.clamp_max(length - 1)
    return values.gather(time_axis, _expand_to(index, values.narrow(time_axis, 0, slot.shape[time_axis])))


class ValueEstimatorBase(nn.Module):
    """Base of the estimator modules: keys, value-network calls, the keyword interface.

    Subclasses implement :meth:`_estimate` ``(values, inputs) -> (advantage, value_target)``.
    ``forward(**inputs)`` returns ``(advantage, value_target)``, both ``[*batch, T, F]``.
    """

    _extra_required: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        value_network=None,
        differentiable: bool = False,
        time_dim: int = -2,
        max_steps: int = DEFAULT_MAX_STEPS,
        shifted: bool = False,
        skip_existing: bool | None = None,
        device: torch.device | str | None = None,
        shifted_budget: int = 1,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        if value_network is not None and not isinstance(getattr(value_network, "in_keys", None), (list, tuple)):
            raise TypeError(f"{owner}: value_network must have in_keys (a list of keys)")
        if not isinstance(shifted, bool):
            raise ValueError(f"{owner}: shifted must be a boolean, got {shifted!r}")
        if isinstance(shifted_budget, bool) or not isinstance(shifted_budget, int) or shifted_budget < 1:
            raise ValueError(f"{owner}: shifted_budget must be >= 1, got {shifted_budget!r}")
        if skip_existing is not None and not isinstance(skip_existing, bool):
            raise ValueError(f"{owner}: skip_existing must be None or a boolean, got {skip_existing!r}")
        if isinstance(value_network, nn.Module):
            self.value_network = value_network
        else:
            self.__dict__["value_network"] = value_network
        self.differentiable = bool(differentiable)
        self.time_dim = time_dim
        self.max_steps = max_steps
        self.shifted = shifted
        self.shifted_budget = shifted_budget
        self.skip_existing = skip_existing
        self._device = None if device is None else torch.device(device)
        self._tensor_keys = _AcceptedKeys()
        self._nested_keys: dict[str, Any] = {}

    @property
    def _uses_given_values(self) -> bool:
        """Whether ``state_value``/``next_state_value`` inputs are read: always without a value
        network; with one only under ``skip_existing=True`` (TorchRL: the value network skips an
        output that exists; by default, as TorchRL's global default, it recomputes it)."""
        return self.value_network is None or (bool(self.skip_existing) and not self._single_call)

    @property
    def _single_call(self) -> bool:
        """``shifted=True`` with a value network: one call over ``T + shifted_budget`` slots."""
        return self.shifted and self.value_network is not None

    # -- keys -------------------------------------------------------------------------------
    @property
    def tensor_keys(self) -> _AcceptedKeys:
        return self._tensor_keys

    def set_keys(self, **kwargs) -> None:
        """Rename inputs/outputs: ``advantage``, ``value_target``, ``value``, ``reward``, ``done``,
        ``terminated``, ``sample_log_prob``, ``target_log_prob``, ``action`` (str or tuple keys)."""
        fields = {f.name for f in dataclasses.fields(_AcceptedKeys)}
        for key, value in kwargs.items():
            if key not in fields:
                raise ValueError(f"{type(self).__name__}.set_keys: {key!r} is not supported; choose one of {sorted(fields)}")
            if value is None:
                raise ValueError(f"{type(self).__name__}.set_keys: key {key!r} cannot be None")
            setattr(self._tensor_keys, key, flatten_key(value))
            self._nested_keys[key] = value  # the TensorDict key, for est(td)

    def nested_key(self, name: str):
        """The TensorDict key of tensor key ``name`` (``set_keys``' value, unflattened)."""
        return self._nested_keys.get(name, getattr(self._tensor_keys, name))

    def _net_keys(self) -> list[str]:
        if self.value_network is None:
            return []
        return [flatten_key(k) for k in self.value_network.in_keys]

    @property
    def in_keys(self) -> list[str]:
        k = self._tensor_keys
        keys = self._net_keys() + [next_key(k.reward), next_key(k.done), next_key(k.terminated)]
        keys += [next_key(key) for key in self._net_keys()]
        if self.value_network is None:
            keys += [k.value, next_key(k.value)]
        return keys + list(self._extra_in_keys())

    def _extra_in_keys(self) -> list[str]:
        return []

    @property
    def out_keys(self) -> list[str]:
        return [self._tensor_keys.advantage, self._tensor_keys.value_target]

    # -- value network ------------------------------------------------------------------------
    def _call_value_network(self, inputs: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
        kwargs = {k: inputs[(prefix + k) if prefix else k] for k in self._net_keys()}
        if prefix:
            kwargs = {k: next_or_current(v, inputs.get(k)) for k, v in kwargs.items()}
        check_network_dtype(type(self).__name__, inputs, [prefix + k for k in self._net_keys()], parameter_dtype(self.value_network))
        return self._run_value_network(kwargs)

    def _run_value_network(self, kwargs: dict[str, torch.Tensor]) -> torch.Tensor:
        net = self.value_network
        if isinstance(net, nn.Module) and torch.is_grad_enabled():
            # The estimator holds the network out of the graph (TorchRL's hold_out_net):
            # gradients may reach the inputs, never the parameters.
            params = {name: p.detach() for name, p in net.named_parameters()}
            return torch.func.functional_call(net, params, args=(), kwargs=kwargs, strict=False)
        return net(**kwargs)

    def _shifted_values(self, inputs, done, terminated, time_axis: int):
        """TorchRL 0.14.1's ``shifted=True``: ``(value, next_value, valid)`` from one value-network
        call. The inputs are laid out along ``T + shifted_budget`` time slots: every step's input,
        and after each in-batch truncation (``done & ~terminated``) its true next input, the later
        steps shifted right; the last step's next input closes the sequence. Steps pushed past the
        budget are not ``valid`` (``[*batch, T]``)."""
        keys = self._net_keys()
        check_network_dtype(type(self).__name__, inputs, keys + [next_key(x) for x in keys], parameter_dtype(self.value_network))
        layout = _shifted_layout(done, terminated, time_axis, self.shifted_budget)
        merged = {}
        for key in keys:
            root, nxt = inputs[key], next_or_current(inputs[next_key(key)], inputs[key])
            merged[key] = _shifted_merge(root, nxt, layout, time_axis)
        values = self._run_value_network(merged)
        value = _gather_time(values, layout.root_slot, time_axis, layout.length)
        next_value = _gather_time(values, layout.next_slot, time_axis, layout.length)
        return value, next_value.detach(), layout

    def _values(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        k = self._tensor_keys
        value = next_value = None
        if self._uses_given_values:
            value = inputs.get(k.value)
            next_value = inputs.get(next_key(k.value))
        if value is None:
            value = self._call_value_network(inputs, "")
        if next_value is None:
            next_value = self._call_value_network(inputs, "next_").detach()
        return value, next_value

    # -- call -------------------------------------------------------------------------------
    forward = KeywordForward()

    def _forward_names(self) -> list[str]:
        names = self.in_keys + [k for k in self._optional_extra() if k not in self.in_keys]
        names += [next_key(self._tensor_keys.terminated)]
        if self.value_network is not None and self._uses_given_values:
            names += [self._tensor_keys.value, next_key(self._tensor_keys.value)]
        return list(dict.fromkeys(names))

    def _forward_token(self) -> tuple:
        return (tuple(vars(self._tensor_keys).values()), self.value_network is None, self.skip_existing, self.shifted)

    def _keyword_call(self, *args: Any, **inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``estimator(**tensors) -> (advantage, value_target)``, both ``[*batch, T, F]``.

        A TensorDict given positionally is handled by :mod:`rlexport.tensordict`: ``advantage``
        and ``value_target`` (and the values the network computed) are written into it and it
        is returned, as TorchRL's estimators do."""
        td = positional_tensordict(type(self).__name__, args, inputs, self._forward_names())
        if td is not None:
            from rlexport.tensordict import call_estimator  # lazy: only TensorDict callers import tensordict

            return call_estimator(self, td)
        out = self.estimate_all(**inputs)
        k = self._tensor_keys
        return out[k.advantage], out[k.value_target]

    @property
    def accepted_keys(self) -> list[str]:
        """Every keyword name a call accepts (required or optional)."""
        required, optional = self._keywords()
        return list(dict.fromkeys(required + optional))

    def _keywords(self) -> tuple[list[str], list[str]]:
        k = self._tensor_keys
        value_keys = [k.value, next_key(k.value)]
        required = [next_key(k.reward), next_key(k.done)] + list(self._required_extra())
        optional = [next_key(k.terminated)] + self._net_keys() + [next_key(x) for x in self._net_keys()]
        optional += list(self._optional_extra())
        if self.value_network is None:
            required += value_keys
        elif self._uses_given_values:
            optional += value_keys
        return required, optional

    def estimate_all(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{advantage key: ..., value_target key: ..., value key: ..., next value key: ...}``:
        the estimates and the values they used (what TorchRL writes into its TensorDict)."""
        owner = type(self).__name__
        k = self._tensor_keys
        if k.sample_log_prob == LOG_PROB_KEYS[0] and LOG_PROB_KEYS[1] in inputs:
            inputs = resolve_alias(owner, inputs, *LOG_PROB_KEYS)  # TorchRL 0.14.1's name
        value_keys = [k.value, next_key(k.value)]
        required, optional = self._keywords()
        check_keywords(owner, inputs, required, optional)
        if self.value_network is not None:
            needed = []
            if inputs.get(k.value) is None or not self._uses_given_values:
                needed += self._net_keys()
            if inputs.get(next_key(k.value)) is None or not self._uses_given_values:
                needed += [next_key(x) for x in self._net_keys()]
            check_keywords(owner, {x: v for x, v in inputs.items() if v is not None and x in needed}, needed)
        flag_keys = (next_key(k.done), next_key(k.terminated))
        for name, value in inputs.items():
            if value is not None:
                check_tensor(owner, name, value, boolean=name in flag_keys)
        for name in (next_key(k.reward), *flag_keys, *value_keys):
            value = inputs.get(name)
            if value is not None:
                check_trailing_one(owner, name, value)
                check_not_empty(owner, name, value)
        with torch.set_grad_enabled(self.differentiable and torch.is_grad_enabled()):
            reward = inputs[next_key(k.reward)]
            done = inputs[next_key(k.done)]
            terminated = inputs.get(next_key(k.terminated))
            if terminated is None:
                terminated = done
            if not self._single_call:
                value, next_value = self._values(inputs)
                advantage, value_target = self._estimate(value, next_value, reward, done, terminated, inputs)
                return {k.advantage: advantage, k.value_target: value_target, k.value: value, next_key(k.value): next_value}
            time_axis = normalize_dim(owner, "time_dim", self.time_dim, reward.ndim)
            value, next_value, layout = self._shifted_values(inputs, done, terminated, time_axis)
            # the last kept step before a displaced one ends its trajectory there, bootstrapping
            cut = layout.last_valid.unsqueeze(-1)
            done, terminated = done | cut, terminated & ~cut
            advantage, value_target = self._estimate(value, next_value, reward, done, terminated, inputs)
            zero = torch.zeros((), dtype=advantage.dtype, device=advantage.device)
            advantage = torch.where(_expand_to(layout.valid, advantage), advantage, zero)
            value_target = torch.where(_expand_to(layout.valid, value_target), value_target, zero)
        return {k.advantage: advantage, k.value_target: value_target, k.value: value, next_key(k.value): next_value,
                SHIFTED_VALID: layout.valid}

    def _required_extra(self) -> list[str]:
        return []

    def _optional_extra(self) -> list[str]:
        return []

    def _estimate(self, value, next_value, reward, done, terminated, inputs):  # pragma: no cover
        raise NotImplementedError

    def _coef(self, name: str, like: torch.Tensor) -> torch.Tensor:
        return constant_like(getattr(self, name), like)

    @staticmethod
    def _standardize(x: torch.Tensor, eps: float) -> torch.Tensor:
        return (x - x.mean()) / x.std().clamp_min(eps)


class _TDBase(ValueEstimatorBase):
    def __init__(self, *, gamma, value_network=None, average_rewards: bool = False, differentiable: bool = False,
                 time_dim: int = -2, max_steps: int = DEFAULT_MAX_STEPS, shifted: bool = False,
                 skip_existing: bool | None = None, device=None, shifted_budget: int = 1) -> None:
        super().__init__(value_network=value_network, differentiable=differentiable, time_dim=time_dim, max_steps=max_steps,
                         shifted=shifted, skip_existing=skip_existing, device=device,
                         shifted_budget=shifted_budget)
        _coef_attr(self, "gamma", gamma)
        self.average_rewards = bool(average_rewards)

    def _reward(self, reward: torch.Tensor) -> torch.Tensor:
        return self._standardize(reward, 1e-5) if self.average_rewards else reward


class TD0Estimator(_TDBase):
    """TD(0): ``value_target = r + gamma (1 - terminated) V'``, ``advantage = value_target - V``.

    Keyword Args:
        gamma (float or Tensor): discount. value_network: see the module docs (optional when
        values are passed). average_rewards (bool): standardize rewards first.
        differentiable (bool): keep the autograd graph (default ``False``: no_grad).

    Examples:
        >>> td0 = TD0Estimator(gamma=0.9)
        >>> adv, target = td0(next_reward=torch.ones(2, 3, 1), next_done=torch.zeros(2, 3, 1, dtype=torch.bool),
        ...                   state_value=torch.zeros(2, 3, 1), next_state_value=torch.ones(2, 3, 1))
        >>> target[0, :, 0]
        tensor([1.9000, 1.9000, 1.9000])
    """

    def _estimate(self, value, next_value, reward, done, terminated, inputs):
        target = F.td0_return_estimate(self._coef("gamma", reward), next_value, self._reward(reward), terminated)
        return target - value, target


class TD1Estimator(_TDBase):
    """TD(1): discounted return to the end of the trajectory, bootstrapped at truncations and at
    the last step; ``advantage = value_target - V``. Same keywords as :class:`TD0Estimator`
    plus ``time_dim``.

    Examples:
        >>> td1 = TD1Estimator(gamma=0.5)
        >>> adv, target = td1(next_reward=torch.ones(3, 1), next_done=torch.zeros(3, 1, dtype=torch.bool),
        ...                   state_value=torch.zeros(3, 1), next_state_value=torch.zeros(3, 1))
        >>> target[:, 0]
        tensor([1.7500, 1.5000, 1.0000])
    """

    def _estimate(self, value, next_value, reward, done, terminated, inputs):
        target = F.td1_return_estimate(
            self._coef("gamma", reward), next_value, self._reward(reward), done, terminated,
            time_dim=self.time_dim, max_steps=self.max_steps,
        )
        return target - value, target


class TDLambdaEstimator(_TDBase):
    r"""TD(:math:`\lambda`): ``value_target`` is the lambda-return, ``advantage = value_target - V``.

    Keyword Args:
        gamma, lmbda (float or Tensor): discount and lambda. ``vectorized`` is accepted for
        TorchRL compatibility and ignored (there is one implementation). Others as
        :class:`TD0Estimator`.

    Examples:
        >>> est = TDLambdaEstimator(gamma=0.9, lmbda=0.5)
        >>> adv, target = est(next_reward=torch.ones(3, 1), next_done=torch.zeros(3, 1, dtype=torch.bool),
        ...                   state_value=torch.zeros(3, 1), next_state_value=torch.ones(3, 1))
        >>> target[:, 0]
        tensor([2.4872, 2.3050, 1.9000])
    """

    def __init__(self, *, gamma, lmbda, value_network=None, average_rewards: bool = False, differentiable: bool = False,
                 vectorized: bool = True, time_dim: int = -2, max_steps: int = DEFAULT_MAX_STEPS, shifted: bool = False,
                 skip_existing: bool | None = None, device=None, shifted_budget: int = 1) -> None:
        super().__init__(gamma=gamma, value_network=value_network, average_rewards=average_rewards,
                         differentiable=differentiable, time_dim=time_dim, max_steps=max_steps,
                         shifted=shifted, skip_existing=skip_existing, device=device,
                         shifted_budget=shifted_budget)
        _coef_attr(self, "lmbda", lmbda)
        self.vectorized = vectorized

    def _estimate(self, value, next_value, reward, done, terminated, inputs):
        target = F.td_lambda_return_estimate(
            self._coef("gamma", reward), self._coef("lmbda", reward), next_value, self._reward(reward), done, terminated,
            time_dim=self.time_dim, max_steps=self.max_steps,
        )
        return target - value, target


class GAE(ValueEstimatorBase):
    """Generalized advantage estimate: ``(advantage, value_target = advantage + V)``.

    Keyword Args:
        gamma, lmbda (float or Tensor): discount and GAE lambda.
        value_network (optional): called when ``state_value``/``next_state_value`` are not given.
        average_gae (bool): standardize the advantage (mean 0, std 1, std clamped at 1e-4).
        differentiable (bool): keep the autograd graph (default ``False``: no_grad).
        vectorized: accepted for TorchRL compatibility, ignored.
        time_dim (int): the tensors' time axis (default ``-2``).
        max_steps (int): horizons up to ``2**max_steps`` in a traced/exported graph.

    Examples:
        >>> gae = GAE(gamma=0.9, lmbda=0.5)
        >>> adv, target = gae(next_reward=torch.ones(3, 1), next_done=torch.zeros(3, 1, dtype=torch.bool),
        ...                   next_terminated=torch.zeros(3, 1, dtype=torch.bool),
        ...                   state_value=torch.zeros(3, 1), next_state_value=torch.ones(3, 1))
        >>> adv[:, 0]
        tensor([3.1397, 2.7550, 1.9000])
    """

    def __init__(self, *, gamma, lmbda, value_network=None, average_gae: bool = False, differentiable: bool = False,
                 vectorized: bool | None = None, time_dim: int = -2, max_steps: int = DEFAULT_MAX_STEPS, shifted: bool = False,
                 skip_existing: bool | None = None, device=None, shifted_budget: int = 1) -> None:
        super().__init__(value_network=value_network, differentiable=differentiable, time_dim=time_dim, max_steps=max_steps,
                         shifted=shifted, skip_existing=skip_existing, device=device,
                         shifted_budget=shifted_budget)
        _coef_attr(self, "gamma", gamma)
        _coef_attr(self, "lmbda", lmbda)
        self.average_gae = bool(average_gae)
        self.vectorized = vectorized

    def _estimate(self, value, next_value, reward, done, terminated, inputs):
        adv, target = F.generalized_advantage_estimate(
            self._coef("gamma", reward), self._coef("lmbda", reward), value, next_value, reward, done, terminated,
            time_dim=self.time_dim, max_steps=self.max_steps,
        )
        if self.average_gae:
            adv = self._standardize(adv, 1e-4)
        return adv, target


class MultiAgentGAE(GAE):
    """TorchRL 0.14.1's ``MultiAgentGAE`` (``ValueEstimators.MAGAE``): GAE for per-agent values
    ``[*batch, T, n_agents, 1]`` with team-shared ``next_reward``/``next_done``/``next_terminated``
    ``[*batch, T, 1]`` (broadcast along ``agent_dim`` first) or per-agent ones (the value's
    shape, used as they are). ``average_gae`` standardises each agent separately (over every
    dim but ``agent_dim``).

    Keyword Args:
        agent_dim (int): the agent axis of the value tensor (default ``-2``).
        time_dim (int, optional): the time axis of the value tensor. Default: ``-3`` when the
            signals are team-shared (one dim fewer than the value), else ``-2`` (the
            ``[*batch, T, 1]`` layout); give ``-3`` for per-agent signals.
        Others as :class:`GAE`.
    """

    def __init__(self, *, agent_dim: int = -2, time_dim: int | None = None, **kwargs) -> None:
        super().__init__(time_dim=-2 if time_dim is None else time_dim, **kwargs)
        self.agent_dim = agent_dim
        self._time_dim_given = time_dim is not None

    def _broadcast(self, name: str, tensor: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        if tensor.ndim == value.ndim:
            return tensor
        if tensor.ndim != value.ndim - 1:
            raise InputError(
                f"{type(self).__name__}: {name!r} has shape {list(tensor.shape)} but the value has shape "
                f"{list(value.shape)}; expected the value's shape (per agent) or one dim fewer (team-shared)"
            )
        dim = self.agent_dim % value.ndim
        shape = list(tensor.unsqueeze(dim).shape)
        shape[dim] = value.shape[dim]
        return tensor.unsqueeze(dim).expand(shape)

    def _estimate(self, value, next_value, reward, done, terminated, inputs):
        team_shared = reward.ndim == value.ndim - 1
        time_dim = self.time_dim if self._time_dim_given else (-3 if team_shared else -2)
        reward, done, terminated = (
            self._broadcast(name, t, value)
            for name, t in (("next_reward", reward), ("next_done", done), ("next_terminated", terminated))
        )
        adv, target = F.generalized_advantage_estimate(
            self._coef("gamma", reward), self._coef("lmbda", reward), value, next_value, reward, done, terminated,
            time_dim=time_dim, max_steps=self.max_steps,
        )
        if self.average_gae:
            dims = [d for d in range(adv.ndim) if d != self.agent_dim % adv.ndim]
            adv = (adv - adv.mean(dims, keepdim=True)) / adv.std(dims, keepdim=True).clamp_min(1e-4)
        return adv, target


class VTrace(ValueEstimatorBase):
    """V-trace off-policy targets: ``(advantage, value_target = vs)``.

    The behaviour policy's log-prob (the policy that collected the data) is the
    ``sample_log_prob`` keyword. The target policy's log-prob of the taken action comes either
    from ``actor_network`` (``actor_network.get_dist(**{k: inputs[k] for k in
    actor_network.in_keys}).log_prob(inputs["action"])``, detached) or, without an actor, from
    the ``target_log_prob`` keyword. Log-probs may be ``[*batch, T]`` or ``[*batch, T, 1]``.

    Keyword Args:
        gamma (float or scalar Tensor), rho_thresh, c_thresh (default 1.0), average_adv (bool),
        actor_network (optional), value_network (optional), differentiable, time_dim, max_steps.

    Examples:
        >>> vt = VTrace(gamma=0.9)
        >>> z, b = torch.zeros(3, 1), torch.zeros(3, 1, dtype=torch.bool)
        >>> adv, vs = vt(next_reward=torch.ones(3, 1), next_done=b, state_value=z, next_state_value=z,
        ...              sample_log_prob=z, target_log_prob=z)
        >>> vs[:, 0]
        tensor([2.7100, 1.9000, 1.0000])
    """

    def __init__(self, *, gamma, actor_network=None, value_network=None, rho_thresh=1.0, c_thresh=1.0,
                 average_adv: bool = False, differentiable: bool = False, time_dim: int = -2,
                 max_steps: int = DEFAULT_MAX_STEPS, shifted: bool = False,
                 skip_existing: bool | None = None, device=None, shifted_budget: int = 1) -> None:
        super().__init__(value_network=value_network, differentiable=differentiable, time_dim=time_dim, max_steps=max_steps,
                         shifted=shifted, skip_existing=skip_existing, device=device,
                         shifted_budget=shifted_budget)
        if isinstance(gamma, torch.Tensor) and gamma.numel() != 1:
            raise ValueError(f"VTrace: gamma must be a scalar, got a tensor of shape {list(gamma.shape)}")
        if actor_network is not None and not callable(getattr(actor_network, "get_dist", None)):
            raise TypeError("VTrace: actor_network must have a get_dist(**inputs) method")
        _coef_attr(self, "gamma", gamma)
        _coef_attr(self, "rho_thresh", rho_thresh)
        _coef_attr(self, "c_thresh", c_thresh)
        self.average_adv = bool(average_adv)
        if isinstance(actor_network, nn.Module):
            self.actor_network = actor_network
        else:
            self.__dict__["actor_network"] = actor_network

    def _actor_keys(self) -> list[str]:
        if self.actor_network is None:
            return []
        return [flatten_key(k) for k in self.actor_network.in_keys]

    def _required_extra(self) -> list[str]:
        k = self._tensor_keys
        if self.actor_network is None:
            return [k.sample_log_prob, k.target_log_prob]
        return [k.sample_log_prob, k.action] + self._actor_keys()

    def _extra_in_keys(self) -> list[str]:
        return [x for x in self._required_extra() if x not in self._net_keys()]

    def _estimate(self, value, next_value, reward, done, terminated, inputs):
        k = self._tensor_keys
        log_mu = inputs[k.sample_log_prob].reshape(value.shape)
        if self.actor_network is None:
            log_pi = inputs[k.target_log_prob].reshape(value.shape)
        else:
            dist = self.actor_network.get_dist(**{key: inputs[key] for key in self._actor_keys()})
            log_pi = dist.log_prob(inputs[k.action]).detach().reshape(value.shape)
        adv, vs = F.vtrace_advantage_estimate(
            self._coef("gamma", reward), log_pi, log_mu, value, next_value, reward, done, terminated,
            rho_thresh=self._coef("rho_thresh", reward), c_thresh=self._coef("c_thresh", reward),
            time_dim=self.time_dim, max_steps=self.max_steps,
        )
        if self.average_adv:
            adv = self._standardize(adv, 1e-5)
        return adv, vs


# The one estimator name -> class table.
ESTIMATOR_CLASSES: dict[ValueEstimators, type[ValueEstimatorBase]] = {
    ValueEstimators.TD0: TD0Estimator,
    ValueEstimators.TD1: TD1Estimator,
    ValueEstimators.TDLambda: TDLambdaEstimator,
    ValueEstimators.GAE: GAE,
    ValueEstimators.MAGAE: MultiAgentGAE,
    ValueEstimators.VTrace: VTrace,
}
