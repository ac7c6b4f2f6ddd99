"""Keyword inputs: TorchRL key flattening and the checks every module shares.

Every rlexport module takes TorchRL's flattened keys as keyword arguments (``next_reward`` for
``("next", "reward")``). These helpers give one wording to every input error, so a user reads
the same kind of message from a loss, an estimator or an exporter: the bad key, what was
expected, the shapes involved. Checks look only at names, shapes and dtypes (static under
``torch.export``), never at tensor values.
"""

from __future__ import annotations

import inspect
import math
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch

NestedKey = str | tuple[str, ...]


class InputError(ValueError):
    """An input or option the library cannot compute correctly with (the CLI exits 2 on it)."""


class InputDtypeError(InputError, TypeError):
    """An input of the wrong dtype (also a ``TypeError``)."""


def flatten_key(key: NestedKey) -> str:
    """``("next", "reward") -> "next_reward"``; a plain string is returned unchanged."""
    if isinstance(key, str):
        return key
    if isinstance(key, tuple) and key and all(isinstance(part, str) for part in key):
        return "_".join(key)
    raise TypeError(f"a key must be a string or a tuple of strings, got {key!r}")


def next_key(key: NestedKey) -> str:
    """The flattened name of ``("next", key)``: ``"observation" -> "next_observation"``."""
    return "next_" + flatten_key(key)


def check_keywords(
    owner: str,
    given: Mapping[str, Any],
    required: Iterable[str],
    optional: Iterable[str] = (),
) -> None:
    """Refuse missing and unknown keyword inputs by name.

    Raises ``TypeError`` naming the first missing key (listing every expected one) or every
    unknown key (listing the accepted ones).
    """
    if not optional and type(required) in (list, tuple) and len(given) == len(required):
        # fast path (every wrapper call): exactly the required keys, none of them None
        for k, v in given.items():
            if v is None or k not in required:
                break
        else:
            return
    required = list(dict.fromkeys(required))
    optional = [k for k in dict.fromkeys(optional) if k not in required]
    accepted = required + optional
    missing = [k for k in required if k not in given or given[k] is None]
    if missing:
        raise TypeError(
            f"{owner}: missing input {missing[0]!r}"
            + (f" (and {', '.join(map(repr, missing[1:]))})" if len(missing) > 1 else "")
            + f"; expected keywords: required {required}"
            + (f", optional {optional}" if optional else "")
        )
    unknown = [k for k in given if k not in accepted]
    if unknown:
        raise TypeError(
            f"{owner}: unknown input {', '.join(map(repr, unknown))}; accepted keywords: {accepted}"
        )


def check_tensor(owner: str, name: str, value: Any, *, floating: bool | None = None, boolean: bool = False) -> torch.Tensor:
    """Check that ``value`` is a tensor (of a floating or bool dtype when asked) and return it."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{owner}: input {name!r} must be a torch.Tensor, got {type(value).__name__}")
    if boolean and value.dtype != torch.bool:
        raise TypeError(f"{owner}: input {name!r} must be a bool tensor, got dtype {value.dtype}")
    if floating is True and not value.dtype.is_floating_point:
        raise TypeError(f"{owner}: input {name!r} must be a floating-point tensor, got dtype {value.dtype}")
    return value


def check_same_shape(owner: str, tensors: Mapping[str, torch.Tensor]) -> None:
    """Require every tensor in ``tensors`` to have one shape; the error names both shapes."""
    items = list(tensors.items())
    first_name, first = items[0]
    for name, tensor in items[1:]:
        if tuple(tensor.shape) != tuple(first.shape):
            raise ValueError(
                f"{owner}: {name!r} has shape {list(tensor.shape)} but {first_name!r} has shape "
                f"{list(first.shape)}; they must match"
            )


def normalize_dim(owner: str, name: str, dim: int, ndim: int) -> int:
    """A non-negative dimension index, or ``ValueError`` naming the argument and the rank."""
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise TypeError(f"{owner}: {name} must be an int, got {dim!r}")
    if not -ndim <= dim < ndim:
        raise ValueError(f"{owner}: {name}={dim} is out of range for a tensor with {ndim} dims (shape rank {ndim})")
    return dim % ndim


#: TorchRL's two names of the behaviour policy's log-prob: rlexport's (and the older TorchRL
#: default) ``sample_log_prob``, and TorchRL 0.14.1's (and rlexport's actors') ``action_log_prob``.
LOG_PROB_KEYS = ("sample_log_prob", "action_log_prob")


def positional_tensordict(owner: str, args: tuple, kwargs: Mapping[str, Any], expected: Sequence[str]) -> Any:
    """The TensorDict of a ``module(td)`` call (TorchRL's convention), ``None`` for a keyword
    call; any other positional argument is a ``TypeError`` naming the expected keywords."""
    if not args:
        return None
    if len(args) == 1 and not kwargs and hasattr(args[0], "batch_size"):
        return args[0]
    raise TypeError(f"{owner}.forward takes keyword tensors only (or one TensorDict); expected keywords: {list(expected)}")


def resolve_alias(owner: str, kwargs: dict[str, Any], name: str, alias: str) -> dict[str, Any]:
    """``kwargs`` with ``alias`` renamed to ``name`` (a copy; ``kwargs`` itself when ``alias`` is
    not given). Giving both is an :class:`InputError` naming them."""
    if kwargs.get(alias) is None:
        return kwargs
    if kwargs.get(name) is not None:
        raise InputError(
            f"{owner}: got both {name!r} and {alias!r}, two names of the same input; give exactly one"
        )
    out = {k: v for k, v in kwargs.items() if k != alias}
    out[name] = kwargs[alias]
    return out


def keyword_signature(impl: Callable[..., Any], names: Sequence[str]) -> Callable[..., Any]:
    """A function calling ``impl(self, *args, **kwargs)`` whose ``inspect.signature`` is
    ``(self, *, name_1=None, ...)``: what ``torch.export.export(module, (), kwargs=...,
    dynamic_shapes={name: ...})`` and ``torch.onnx.export(..., dynamo=True)`` bind keyword
    inputs and their dynamic shapes to (a ``**kwargs`` forward cannot be bound by name)."""

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return impl(self, *args, **kwargs)

    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None) for n in names]
    forward.__signature__ = inspect.Signature(params)
    forward.__doc__ = impl.__doc__
    return forward


class KeywordForward:
    """``forward`` as a descriptor: the instance's keyword call with an explicit per-configuration
    signature (:func:`keyword_signature`). The owner class implements ``_keyword_call`` and
    ``_forward_names()`` (the accepted keyword names) and ``_forward_token()`` (what those names
    depend on; the generated function is rebuilt when it changes). Assigning ``module.forward``
    (as tracers do while patching) overrides it on that instance until deleted."""

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        override = obj.__dict__.get("_forward_override")
        if override is not None:
            return override
        token = obj._forward_token()
        cached = obj.__dict__.get("_forward_function")
        if cached is None or cached[0] != token:
            cached = obj.__dict__["_forward_function"] = (token, keyword_signature(type(obj)._keyword_call, obj._forward_names()))
        return types.MethodType(cached[1], obj)

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__["_forward_override"] = value

    def __delete__(self, obj: Any) -> None:
        obj.__dict__.pop("_forward_override", None)


def check_option(
    owner: str,
    name: str,
    value: float,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` if it is finite and inside the interval, else :class:`InputError` naming the
    option, its value and the interval (``low``/``high`` inclusive unless ``*_open``)."""
    inside = math.isfinite(value)
    if inside and low is not None:
        inside = value > low if low_open else value >= low
    if inside and high is not None:
        inside = value < high if high_open else value <= high
    if not inside:
        lo = "(-inf" if low is None else ("(" if low_open else "[") + repr(low)
        hi = "inf)" if high is None else repr(high) + (")" if high_open else "]")
        raise InputError(f"{owner}: {name}={value!r} is out of range; expected a finite value in {lo}, {hi}")
    return value


def parameter_dtype(module: Any) -> torch.dtype | None:
    """The dtype of ``module``'s first floating-point parameter (``None`` without one)."""
    parameters = getattr(module, "parameters", None)
    if parameters is None:
        return None
    for p in parameters():
        if p.is_floating_point():
            return p.dtype
    return None


def check_network_dtype(owner: str, inputs: Mapping[str, Any], keys: Iterable[str], dtype: torch.dtype | None) -> None:
    """Every floating input named in ``keys`` has the network's parameter ``dtype`` (checked
    before the network runs; ``None``: no parameters, nothing to check)."""
    if dtype is None:
        return
    for key in keys:
        value = inputs.get(key)
        if isinstance(value, torch.Tensor) and value.dtype != dtype and value.is_floating_point():
            raise InputDtypeError(
                f"{owner}: input {key!r} has dtype {value.dtype} but the network's parameters are {dtype}; "
                f"cast the input (or the network) so they match"
            )


def check_action_dtype(owner: str, name: str, value: Any, kind: str | None) -> torch.Tensor:
    """An action tensor of the dtype its distribution takes: ``kind="integer"`` (category
    indices: an integer dtype, not bool), ``"floating"`` (a point of a continuous support), or
    ``None`` (no rule). Else :class:`InputDtypeError` naming the key and both dtypes."""
    value = check_tensor(owner, name, value)
    if kind == "integer" and (value.is_floating_point() or value.is_complex() or value.dtype == torch.bool):
        raise InputDtypeError(
            f"{owner}: input {name!r} has dtype {value.dtype}; a discrete action is an integer tensor of "
            f"category indices (e.g. torch.int64)"
        )
    if kind == "floating" and not value.is_floating_point():
        raise InputDtypeError(
            f"{owner}: input {name!r} has dtype {value.dtype}; a continuous action is a floating-point tensor"
        )
    return value


def check_trailing_one(owner: str, name: str, value: torch.Tensor, layout: str = "[*batch, T, 1]") -> None:
    """``value`` has a trailing feature dim of 1 (and at least one more dim), else
    :class:`InputError` naming the key, the expected layout and the actual shape."""
    if value.ndim < 2 or value.shape[-1] != 1:
        raise InputError(
            f"{owner}: input {name!r} has shape {list(value.shape)}; expected {layout} "
            f"(a trailing feature dim of 1: add it with .unsqueeze(-1))"
        )


def check_not_empty(owner: str, name: str, value: torch.Tensor) -> None:
    """No dim of ``value`` is 0 (an empty batch or horizon gives NaN means)."""
    if any(isinstance(n, int) and n == 0 for n in value.shape):
        raise InputError(f"{owner}: input {name!r} has shape {list(value.shape)}: an empty batch; every dim must be >= 1")


def next_or_current(next_value: torch.Tensor, current: torch.Tensor | None) -> torch.Tensor:
    """A next-step input with its NaN entries replaced by the current step's (TorchRL's
    ``_sanitize_next_obs_nan``): environments often fill the observation after a terminal step
    with NaN; its value is masked out at terminated steps, and at a truncation the current
    observation stands in. A ``torch.where``, the same op in eager and graphs; inputs that are
    not floating point or whose shapes differ pass through."""
    if current is None or not next_value.is_floating_point() or current.shape != next_value.shape:
        return next_value
    return torch.where(torch.isnan(next_value), current, next_value)


def constant_like(value: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``value`` as a tensor of ``like``'s dtype and device.

    A Python float written into a traced graph becomes a float32 constant; making every constant
    a tensor of the input dtype keeps float64 graphs exact. A fresh 0-d tensor every call, in
    eager and in a traced graph alike.
    """
    if isinstance(value, torch.Tensor):
        if value.dtype == like.dtype and value.device == like.device:
            return value
        return value.to(dtype=like.dtype, device=like.device)
    return torch.tensor(value, dtype=like.dtype, device=like.device)


def choice(owner: str, name: str, value: Any, allowed: Sequence[Any]) -> Any:
    """Return ``value`` if it is one of ``allowed``, else ``ValueError`` listing the allowed values."""
    if value not in allowed:
        raise ValueError(f"{owner}: {name}={value!r} is not supported; choose one of {list(allowed)}")
    return value
