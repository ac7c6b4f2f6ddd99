"""``LossModule``: the small base every rlexport loss stands on.

A loss is an ``nn.Module`` that holds configuration (Python values) and the actor/critic
modules, and whose ``forward(**tensors)`` is a pure function of its keyword tensors:

    keyword tensors -> checks (names, shapes, dtypes) -> advantage (given, or the value
    estimator in-graph) -> distribution -> log-prob -> objective -> reduction -> tuple

The tuple follows ``loss.out_keys`` (one selected output: the tensor itself, as TorchRL).
Keyword names are TorchRL's keys flattened with ``_`` (``("next", "reward")`` -> ``next_reward``);
``set_keys`` renames them as TorchRL's does (and the value estimator's keys with them).

Hyper-parameters (``entropy_coeff``, ``critic_coeff``, ``clip_value``, ``clip_epsilon``, KLPEN's
``beta``) are Python floats on the module, written into the graph as constants of the input
dtype; each can also be given as a (0-d tensor) keyword input of the same name, which makes it
an input of an exported graph.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import nn

from rlexport.inputs import (
    LOG_PROB_KEYS,
    InputError,
    KeywordForward,
    check_action_dtype,
    check_keywords,
    check_network_dtype,
    check_not_empty,
    check_option,
    check_same_shape,
    check_tensor,
    check_trailing_one,
    choice,
    constant_like,
    flatten_key,
    next_key,
    next_or_current,
    parameter_dtype,
    positional_tensordict,
    resolve_alias,
)

from rlexport.modules import CompositeDistribution, entropy_or_estimate
from rlexport.value import ESTIMATOR_CLASSES, ValueEstimators, as_value_type, default_value_kwargs

from .utils import (
    GAMMA_LMBDA_DEPREC_ERROR,
    LOSS_CRITIC_TYPES,
    REDUCTIONS,
    clip_value_loss,
    distance_loss,
    mean_all,
    reduce,
    reduce_loss,
)

__all__ = ["LossModule", "ValueEstimators", "default_value_kwargs", "pack_outputs"]


class _CallPlan(NamedTuple):
    """What one configuration of a loss reads and returns (cached by ``LossModule._call_plan``)."""

    required: list[str]
    optional: list[str]
    accepted: frozenset[str]
    out_keys: tuple[str, ...]
    wanted: frozenset[str]


class LossModule(nn.Module):
    """Base of the rlexport losses.

    Subclasses define a ``_AcceptedKeys`` dataclass, ``_required_inputs``/``_optional_inputs``
    (flattened keyword names), ``_all_out_keys`` (every output the loss can produce, in the order
    TorchRL writes them into its output TensorDict), ``_default_out_keys`` (TorchRL's
    ``out_keys``: the order of the keyword call's tuple) and ``_compute(inputs, wanted)`` that
    returns a dict of outputs.
    """

    @dataclasses.dataclass
    class _AcceptedKeys:
        advantage: str = "advantage"
        value_target: str = "value_target"
        value: str = "state_value"
        sample_log_prob: str = "sample_log_prob"
        action: str = "action"
        reward: str = "reward"
        done: str = "done"
        terminated: str = "terminated"

    default_keys = _AcceptedKeys
    default_value_estimator_name = "GAE"
    SUPPORTED_VALUE_ESTIMATORS = ("TD0", "TD1", "TDLambda", "GAE", "MAGAE", "VTrace")

    def __init__(self) -> None:
        super().__init__()
        self._tensor_keys = self._AcceptedKeys()
        self._selected_out_keys: list[str] | None = None
        self._value_estimator = None
        self.value_type = None

    # ---------------------------------------------------------------- construction helpers
    @staticmethod
    def _resolve_alias(owner: str, primary: str, value: Any, alias: str, kwargs: dict, default: Any) -> Any:
        """``entropy_coeff`` / ``entropy_coef``: either spelling, never both."""
        if alias in kwargs:
            alias_value = kwargs.pop(alias)
            if value is not None:
                raise TypeError(f"{owner}: give either {primary}= or {alias}=, not both")
            value = alias_value
        return default if value is None else value

    @staticmethod
    def _check_no_kwargs(owner: str, kwargs: dict, accepted: list[str]) -> None:
        if "gamma" in kwargs or "lmbda" in kwargs:
            raise TypeError(GAMMA_LMBDA_DEPREC_ERROR)
        if kwargs:
            raise TypeError(
                f"{owner}: unknown option {', '.join(map(repr, kwargs))}; accepted options: {accepted}"
            )

    @staticmethod
    def _check_float(owner: str, name: str, value: Any, *, allow_none: bool = False, **bounds: Any) -> float | None:
        """A finite float option inside ``bounds`` (:func:`rlexport.inputs.check_option`)."""
        if value is None and allow_none:
            return None
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()  # construction time only, never in forward
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{owner}: {name} must be a float, got {value!r}")
        return check_option(owner, name, float(value), **bounds)

    @staticmethod
    def _check_count(owner: str, name: str, value: Any) -> int:
        """A positive int option (a number of Monte-Carlo samples)."""
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{owner}: {name}={value!r} is out of range; expected an int >= 1")
        return value

    def _common_options(self, owner: str, loss_critic_type: str, reduction: str | None) -> None:
        self.loss_critic_type = choice(owner, "loss_critic_type", loss_critic_type, LOSS_CRITIC_TYPES)
        self.reduction = choice(owner, "reduction", "mean" if reduction is None else reduction, REDUCTIONS)

    @staticmethod
    def _shared_parameter_names(actor: nn.Module, critic: nn.Module) -> frozenset[str]:
        """Names (in ``critic``) of the parameters that are also parameters of ``actor``."""
        actor_ids = {id(p) for p in actor.parameters()}
        return frozenset(name for name, p in critic.named_parameters() if id(p) in actor_ids)

    # ---------------------------------------------------------------- keys
    @property
    def tensor_keys(self) -> _AcceptedKeys:
        return self._tensor_keys

    def set_keys(self, **kwargs: Any) -> None:
        """Rename the input keys, as TorchRL's ``set_keys`` (``None`` restores the default)."""
        fields = [f.name for f in dataclasses.fields(self._AcceptedKeys)]
        for key, value in kwargs.items():
            if key not in fields:
                raise ValueError(
                    f"{type(self).__name__}.set_keys: {key!r} is not an accepted key; accepted keys: {fields}"
                )
        for key, value in kwargs.items():
            if value is None:
                value = getattr(self.default_keys(), key)
            flatten_key(value)  # validates the type
            setattr(self._tensor_keys, key, value)
        self._forward_value_estimator_keys()

    # The loss keys its value estimator shares (TorchRL's ``_forward_value_estimator_keys``).
    ESTIMATOR_KEYS = ("advantage", "value_target", "value", "reward", "done", "terminated", "sample_log_prob")

    def _forward_value_estimator_keys(self) -> None:
        """Give the value estimator (if built and keyed) the loss's keys, as TorchRL's ``set_keys``
        and ``make_value_estimator`` do."""
        estimator = getattr(self, "_value_estimator", None)
        keys = getattr(estimator, "tensor_keys", None)
        if keys is None or not callable(getattr(estimator, "set_keys", None)):
            return
        estimator.set_keys(**{
            name: getattr(self._tensor_keys, name) for name in self.ESTIMATOR_KEYS if hasattr(keys, name)
        })

    @property
    def input_aliases(self) -> dict[str, str]:
        """``{alias: keyword}``: other names ``forward`` accepts for an input. With the default
        log-prob key, TorchRL 0.14.1's ``action_log_prob`` (what rlexport's and TorchRL's actors
        write) stands for ``sample_log_prob``; giving both is an error."""
        if self._tensor_keys.sample_log_prob != LOG_PROB_KEYS[0]:
            return {}
        return {LOG_PROB_KEYS[1]: LOG_PROB_KEYS[0]}

    def _resolve_aliases(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if LOG_PROB_KEYS[1] in kwargs:
            for alias, name in self.input_aliases.items():
                kwargs = resolve_alias(type(self).__name__, kwargs, name, alias)
        return kwargs

    def _k(self, name: str) -> str:
        """The keyword name of tensor key ``name``."""
        return flatten_key(getattr(self._tensor_keys, name))

    def _nk(self, name: str) -> str:
        """The keyword name of ``("next", tensor key name)``."""
        return next_key(getattr(self._tensor_keys, name))

    def _estimator_inputs(self, *, current_critic_inputs: bool) -> list[str]:
        """What the in-graph value estimator reads when no advantage is given: the next reward,
        done and terminated flags, the critic's inputs (the current ones too if asked) and their
        ``next_`` twins."""
        keys = [self._nk("reward"), self._nk("done"), self._nk("terminated")]
        if self._uses_vtrace:  # V-trace reweights by the behaviour policy's log-prob (TorchRL)
            keys.append(self._k("sample_log_prob"))
        if current_critic_inputs:
            keys += self._critic_in_keys
        return keys + ["next_" + k for k in self._critic_in_keys]

    @property
    def _uses_vtrace(self) -> bool:
        """Whether the in-graph estimator is V-trace (it reads the log-prob and the actor's inputs)."""
        value_type = self.__dict__.get("value_type")
        if isinstance(value_type, type):  # an estimator class (TorchRL keeps the class of an instance)
            return issubclass(value_type, ESTIMATOR_CLASSES[ValueEstimators.VTrace])
        return getattr(value_type, "name", None) == "VTrace"

    # ---------------------------------------------------------------- inputs and outputs
    def _required_inputs(self, given: Mapping[str, Any]) -> list[str]:
        raise NotImplementedError

    def _optional_inputs(self, given: Mapping[str, Any]) -> list[str]:
        raise NotImplementedError

    @property
    def in_keys(self) -> list[str]:
        """Keyword names the loss reads when it computes the advantage itself (TorchRL's in_keys),
        each once (an actor and a critic reading ``observation`` name it once)."""
        return list(dict.fromkeys(self._required_inputs({})))

    @property
    def accepted_keys(self) -> list[str]:
        """Every keyword name ``forward`` accepts (required for some configuration, or optional)."""
        adv = {self._k("advantage"): None}
        keys = self._required_inputs({}) + self._optional_inputs({})
        keys += self._required_inputs(adv) + self._optional_inputs(adv)
        return list(dict.fromkeys(keys))

    def _all_out_keys(self) -> list[str]:
        raise NotImplementedError

    def _default_out_keys(self) -> list[str]:
        raise NotImplementedError

    @property
    def out_keys(self) -> list[str]:
        """Names of the outputs of ``forward``, in order."""
        if self._selected_out_keys is not None:
            return list(self._selected_out_keys)
        return self._default_out_keys()

    @out_keys.setter
    def out_keys(self, values) -> None:
        self.select_out_keys(*values)

    @property
    def available_out_keys(self) -> list[str]:
        """Every output the loss can return (``out_keys`` plus TorchRL's TensorDict-only entries)."""
        return list(self._all_out_keys())

    def select_out_keys(self, *keys: str) -> "LossModule":
        """Return only ``keys`` (in this order) from ``forward``; any of ``available_out_keys``."""
        available = self._all_out_keys()
        for key in keys:
            if key not in available:
                raise ValueError(
                    f"{type(self).__name__}.select_out_keys: {key!r} is not an output of this loss; "
                    f"available outputs: {available}"
                )
        if not keys:
            raise ValueError(f"{type(self).__name__}.select_out_keys: give at least one output name")
        self._selected_out_keys = list(keys)
        return self

    def reset_out_keys(self) -> "LossModule":
        self._selected_out_keys = None
        return self

    # Inputs whose leading dim is the Monte-Carlo sample dim: ``[samples, *batch, *event]``
    # (and their per-head ``entropy_noise_<head>`` / ``kl_noise_<head>`` forms).
    SAMPLE_LEADING_INPUTS = ("entropy_noise", "kl_noise")

    def dynamic_dims(self, example: Mapping[str, torch.Tensor]) -> dict[str, dict[int, str]]:
        """``{input name: {dim: label}}`` for exporters: the batch dims of every batch-shaped
        input (``"batch"``, ``"batch_1"``, ... and ``"time"`` for the last of two or more, the
        ``[*batch, T, F]`` convention); noise inputs carry them after their sample dim;
        hyper-parameter inputs (0-d) stay static."""
        ref_key = next((k for k in getattr(self, "_actor_in_keys", []) if k in example), None)
        if ref_key is None:
            return {}
        batch = tuple(example[ref_key].shape[:-1])
        n = len(batch)
        labels = [f"batch_{i}" if i else "batch" for i in range(n)]
        if n >= 2:
            labels[-1] = "time"
        out: dict[str, dict[int, str]] = {}
        for name, value in example.items():
            if not isinstance(value, torch.Tensor):
                continue
            offset = 1 if name.startswith(self.SAMPLE_LEADING_INPUTS) else 0
            if tuple(value.shape[offset : offset + n]) == batch and value.dim() >= offset + n:
                out[name] = {offset + i: labels[i] for i in range(n)}
        return out

    def _call_plan(self, kwargs: Mapping[str, Any]) -> "_CallPlan":
        """The input names and outputs of a call with ``kwargs``: they depend on whether the
        advantage is given, the keys, the configuration and the selected outputs, and are cached
        per those (one check per call)."""
        keys = self._tensor_keys
        has_adv = kwargs.get(flatten_key(keys.advantage)) is not None
        selected = self._selected_out_keys
        cache_key = (
            has_adv, tuple(vars(keys).values()), self._config_token(), None if selected is None else tuple(selected),
        )
        cached = self.__dict__.get("_call_plan_cache")
        if cached is None or cached[0] != cache_key:
            given = {self._k("advantage"): True} if has_adv else {}
            required, optional = self._required_inputs(given), self._optional_inputs(given)
            out_keys = tuple(self.out_keys)
            plan = _CallPlan(required, optional, frozenset(required) | frozenset(optional), out_keys, frozenset(out_keys))
            cached = (cache_key, plan)
            self.__dict__["_call_plan_cache"] = cached
        return cached[1]

    def _config_token(self) -> tuple:
        """What the accepted inputs depend on besides the keys (options that can be reassigned).
        Read from the instance dicts directly: this runs on every call."""
        options = self.__dict__
        return (
            options.get("clip_value"), options.get("critic_coeff"), options.get("entropy_bonus"),
            self._modules.get("critic_network") is None, options.get("value_type"),
        )

    def _check_inputs(self, kwargs: dict[str, Any], plan: "_CallPlan | None" = None) -> dict[str, torch.Tensor]:
        """Refuse missing, unknown and non-tensor inputs by name; the inputs without ``None``s."""
        plan = plan or self._call_plan(kwargs)
        if not (kwargs.keys() <= plan.accepted and all(kwargs.get(k) is not None for k in plan.required)):
            check_keywords(type(self).__name__, kwargs, plan.required, plan.optional)  # raises, naming the keys
        for value in kwargs.values():
            if type(value) is not torch.Tensor:  # a None, a tensor subclass or a bad value
                break
        else:
            return kwargs
        for name, value in kwargs.items():
            if value is not None and not isinstance(value, torch.Tensor):
                check_tensor(type(self).__name__, name, value)  # raises
        return {k: v for k, v in kwargs.items() if v is not None}

    def _hyper(self, name: str, inputs: Mapping[str, Any], like: torch.Tensor) -> torch.Tensor:
        """Hyper-parameter ``name`` as a tensor of ``like``'s dtype: the keyword input if given."""
        value = inputs.get(name)
        if value is None:
            value = getattr(self, name)
        return const(value, like)

    def _unit_factor(self, name: str | None, inputs: Mapping[str, Any]) -> bool:
        """Whether multiplying by hyper-parameter ``name`` is the identity (no such factor, or
        the module's float 1.0 with no keyword input overriding it)."""
        return name is None or (inputs.get(name) is None and getattr(self, name) == 1.0)

    def _times_hyper(self, name: str, inputs: Mapping[str, Any], tensor: torch.Tensor, *, negate: bool = False) -> torch.Tensor:
        """``tensor * h`` (``tensor * -h`` with ``negate``) for hyper-parameter ``h`` = ``name``.

        With the module's float (no keyword input) a factor of exactly 1 is left out (``x * 1``
        is ``x``); otherwise ``h`` is a 0-d tensor of ``tensor``'s dtype.
        """
        if not negate and self._unit_factor(name, inputs):
            return tensor
        value = inputs.get(name)
        if value is None:
            value = getattr(self, name)
        factor = const(value, tensor)
        return tensor * (-factor if negate else factor)

    forward = KeywordForward()

    def _forward_names(self) -> list[str]:
        return [*self.accepted_keys, *self.input_aliases]

    def _forward_token(self) -> tuple:
        return (tuple(vars(self._tensor_keys).values()), self._config_token(), getattr(self, "value_type", None))

    def _keyword_call(self, *args: Any, **kwargs: torch.Tensor):
        """``loss(**tensors) -> tuple`` in ``out_keys`` order; with one output, that tensor (TorchRL).

        A TensorDict given positionally is handled by :mod:`rlexport.tensordict` and gives a
        TensorDict back, as TorchRL's losses do.
        """
        td = positional_tensordict(type(self).__name__, args, kwargs, self.accepted_keys) if args else None  # keyword call: no key list built
        if td is not None:
            from rlexport.tensordict import call_loss  # lazy: only TensorDict callers import tensordict

            return call_loss(self, td)
        return self._tensor_call(kwargs, check_layout=True)

    def call_layout_checked(self, **inputs: torch.Tensor):
        """``loss(**inputs)`` for an eager caller that already made one checked call with inputs
        of these names, shapes and dtypes (and the same loss options): the same ops and outputs
        without re-running the layout check (metadata only; it cannot change a number). Keys and
        tensor types are still checked. The caller keeps the signature it checked (the torch
        engine's ``update``: one per minibatch shape)."""
        return self._tensor_call(inputs, check_layout=False)

    def _tensor_call(self, kwargs: dict[str, Any], *, check_layout: bool):
        """Aliases resolved, keys and tensor types checked (and the layout when ``check_layout``),
        then the wanted outputs computed and packed in ``out_keys`` order."""
        kwargs = self._resolve_aliases(kwargs)
        plan = self._call_plan(kwargs)
        inputs = self._check_inputs(kwargs, plan)
        if check_layout:
            self._check_layout(inputs)
        return pack_outputs(self._compute(inputs, plan.wanted), plan.out_keys)

    def _compute(self, inputs: dict[str, torch.Tensor], wanted: frozenset[str]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _check_layout(self, inputs: Mapping[str, torch.Tensor]) -> None:
        """Shapes and dtypes that fit together, checked before any network runs (metadata only)."""

    def compute_all(self, **kwargs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every available output as a dict, in TorchRL's TensorDict order (eager helper)."""
        inputs = self._check_inputs(self._resolve_aliases(kwargs))
        self._check_layout(inputs)
        outputs = self._compute(inputs, frozenset(self._all_out_keys()))
        return {k: outputs[k] for k in self._all_out_keys() if k in outputs}

    # ---------------------------------------------------------------- state
    def reset(self) -> None:
        """TorchRL's ``LossModule.reset``: restore the loss's own state (KLPEN's ``beta``); the
        other losses hold none."""

    def reset_parameters_recursive(self) -> None:
        """Re-initialise the networks: ``reset_parameters()`` of every submodule that has one,
        children first (tensordict's ``reset_parameters_recursive`` order), actor, then critic,
        then the target critic (TorchRL's order of its networks)."""
        seen: set[int] = set()
        for name in ("actor_network", "critic_network", "target_critic_network"):
            network = self._modules.get(name)
            if network is not None:
                _reset_parameters(network, seen)

    # ---------------------------------------------------------------- value estimator
    @property
    def value_estimator(self):
        """The estimator used when ``advantage`` is not an input (GAE with TorchRL's defaults)."""
        if self._value_estimator is None:
            self.make_value_estimator()
        return self._value_estimator

    @value_estimator.setter
    def value_estimator(self, value) -> None:
        self._value_estimator = value

    def make_value_estimator(self, value_type=None, **hyperparams: Any) -> "LossModule":
        """Build the in-graph value estimator, as TorchRL's ``make_value_estimator``.

        ``value_type`` is a :class:`rlexport.value.ValueEstimators` member (default GAE), its name
        (``"GAE"``, ``"gae"``), an estimator class, or an estimator instance. Hyper-parameters
        default to :func:`rlexport.value.default_value_kwargs` (TorchRL's: gamma 0.99, lmbda 0.95,
        differentiable True). The estimator is always called with the critic's values
        (``state_value``/``next_state_value``, from the critic with detached parameters, as
        TorchRL does), so it holds no copy of the critic.
        """
        owner = type(self).__name__
        if value_type is None:
            value_type = getattr(ValueEstimators, self.default_value_estimator_name)
        if isinstance(value_type, nn.Module):
            if hyperparams:
                raise TypeError(f"{owner}.make_value_estimator: hyper-parameters cannot be given with an estimator instance")
            self._value_estimator = value_type
            self.value_type = type(value_type)
            return self
        if isinstance(value_type, type):
            self._value_estimator = value_type(**hyperparams)
            self.value_type = value_type
            return self
        try:  # ours, its name, or TorchRL's own enum member (matched by name)
            value_type = as_value_type(value_type)
        except (TypeError, ValueError):
            raise ValueError(
                f"{owner}.make_value_estimator: value_type={value_type!r} is not supported; choose one of "
                f"{[m.name for m in ValueEstimators]}"
            ) from None
        choice(owner, "value_type", value_type.name, list(self.SUPPORTED_VALUE_ESTIMATORS))
        if value_type.name == "VTrace" and getattr(self, "_composite", False):
            raise NotImplementedError(f"{owner}.make_value_estimator: the V-trace estimator with a composite actor is not supported")
        hp = dict(default_value_kwargs(value_type))
        hp.update(hyperparams)
        cls = ESTIMATOR_CLASSES[value_type]
        hp.setdefault("value_network", None)
        if value_type.name == "VTrace":
            hp.setdefault("actor_network", getattr(self, "actor_network", None))
        self._value_estimator = cls(**hp)
        self.value_type = value_type
        self._forward_value_estimator_keys()
        return self

    def _estimate(
        self,
        inputs: Mapping[str, torch.Tensor],
        state_value: torch.Tensor,
        next_state_value: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(advantage, value_target)`` from the estimator, given detached critic values."""
        owner = type(self).__name__
        reward = inputs[self._nk("reward")]
        done = inputs[self._nk("done")]
        terminated = inputs.get(self._nk("terminated"), done)
        check_tensor(owner, self._nk("done"), done, boolean=True)
        check_tensor(owner, self._nk("terminated"), terminated, boolean=True)
        check_same_shape(
            owner,
            {
                self._nk("reward"): reward,
                self._nk("done"): done,
                self._nk("terminated"): terminated,
                self._k("value") + " (critic output)": state_value,
            },
        )
        estimator = self.value_estimator
        keys = getattr(estimator, "tensor_keys", None) or self.default_keys()  # the names it is called with
        call = {
            next_key(keys.reward): reward,
            next_key(keys.done): done,
            next_key(keys.terminated): terminated,
            flatten_key(keys.value): state_value,
            next_key(keys.value): next_state_value,
        }
        if self._uses_vtrace:
            call[flatten_key(keys.sample_log_prob)] = inputs[self._k("sample_log_prob")]
            call[flatten_key(keys.action)] = inputs[self._k("action")]
            for key in self.actor_network.in_keys:
                call[key] = inputs[key]
        return estimator(**call)


def pack_outputs(outputs: Mapping[str, torch.Tensor], out_keys: tuple[str, ...] | list[str]):
    """The keyword call's result: the outputs named by ``out_keys`` as a tuple in that order, or
    the tensor itself when one output is selected (TorchRL's keyword call returns it bare)."""
    if len(out_keys) == 1:
        return outputs[out_keys[0]]
    return tuple([outputs[k] for k in out_keys])


def _reset_parameters(module: nn.Module, seen: set[int]) -> None:
    """``reset_parameters()`` of each child of ``module`` after its own children, each module
    once (a trunk shared by the actor and the critic is re-initialised once)."""
    for child in module.children():
        _reset_parameters(child, seen)
        if hasattr(child, "reset_parameters") and id(child) not in seen:
            seen.add(id(child))
            child.reset_parameters()


def const(value: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """:func:`rlexport.inputs.constant_like`."""
    return constant_like(value, like)


def _module_in_keys(module: nn.Module, default: tuple[str, ...] = ("observation",)) -> list[str]:
    keys = getattr(module, "in_keys", None)
    if keys is None:
        return list(default)
    if type(keys) is list and all(type(k) is str for k in keys):  # rlexport's own modules
        return keys
    return [flatten_key(k) for k in keys]


class ActorCriticLoss(LossModule):
    """Shared plumbing of the actor-critic losses: calling the actor and the critic, the
    in-graph advantage, the entropy bonus and the critic loss. Each step is a method that takes
    and returns tensors; the subclasses' ``_compute`` read top to bottom."""

    ENTROPY_NOISE = "entropy_noise"

    def _setup_networks(self, owner: str, actor_network, critic_network, separate_losses: bool) -> None:
        if actor_network is None:
            raise TypeError(f"{owner}: missing the actor_network (or actor=) argument")
        self.actor_network = actor_network
        self.critic_network = critic_network
        self.separate_losses = bool(separate_losses)
        shared = frozenset()
        if separate_losses and critic_network is not None:
            shared = self._shared_parameter_names(actor_network, critic_network)
        self._critic_shared_params = shared

    def _make_target_critic(self) -> None:
        """``target_critic_network``: a copy of the critic whose parameters are buffers (TorchRL's
        ``create_target_params``: a detached copy that receives no gradient)."""
        target = copy.deepcopy(self.critic_network)
        for module in target.modules():
            for name, param in list(module._parameters.items()):
                del module._parameters[name]
                module.register_buffer(name, None if param is None else param.detach().clone())
        self.target_critic_network = target

    @torch.no_grad()
    def update_target_params(self, tau: float = 1.0) -> None:
        """``target <- (1 - tau) target + tau critic`` for every critic parameter (``tau=1``:
        TorchRL's ``HardUpdate``; ``0 < tau < 1``: ``SoftUpdate`` with ``eps = 1 - tau``). Eager."""
        target = self._modules.get("target_critic_network")
        if target is None:
            raise RuntimeError(f"{type(self).__name__}: no target network; build the loss with delay_value=True")
        tau = check_option(type(self).__name__, "tau", float(tau), low=0.0, high=1.0, low_open=True)
        buffers = dict(target.named_buffers())
        for name, param in self.critic_network.named_parameters():
            buffers[name].lerp_(param.detach(), tau)

    # ---------------------------------------------------------------- composite actions
    @property
    def _composite(self) -> bool:
        """Whether the actor's distribution is a :class:`~rlexport.modules.CompositeDistribution`."""
        return getattr(self.actor_network, "distribution_class", None) is CompositeDistribution

    @property
    def _heads(self) -> list[str]:
        return list(self.actor_network.heads) if self._composite else []

    def _action_inputs(self) -> list[str]:
        """The action keyword(s): ``action``, or ``action_<head>`` per head of a composite actor
        (TorchRL's ``("action", head)``)."""
        action = self._k("action")
        return [f"{action}_{h}" for h in self._heads] if self._composite else [action]

    def _head_log_prob_inputs(self) -> list[str]:
        """A composite actor's per-head behaviour log-probs ``action_<head>_log_prob`` (TorchRL's
        non-aggregated ``("action", f"{head}_log_prob")``)."""
        action = self._k("action")
        return [f"{action}_{h}_log_prob" for h in self._heads]

    def _entropy_noise_inputs(self) -> list[str]:
        """``entropy_noise``, or ``entropy_noise_<head>`` per head of a composite actor."""
        return [f"{self.ENTROPY_NOISE}_{h}" for h in self._heads] if self._composite else [self.ENTROPY_NOISE]

    def _composite_entropy_keys(self) -> list[str]:
        """The per-head entropy outputs: TorchRL's ``("composite_entropy", "action",
        f"{head}_entropy")`` flattened, ``[*batch, 1]``, detached."""
        action = self._k("action")
        return [f"composite_entropy_{action}_{h}_entropy" for h in self._heads]

    def _entropy_options(self, owner: str, entropy_coeff: Any) -> None:
        """``entropy_coeff`` as a float, or (composite actor) a mapping head -> coefficient.

        Keys may be the head name (``"move"``), TorchRL's nested entropy key
        (``("action", "move_entropy")``) or its flattened form (``"action_move_entropy"``);
        every head needs one (TorchRL raises ``KeyError: Missing entropy coeff for head``).
        """
        self._entropy_coeff_map = None
        if not isinstance(entropy_coeff, Mapping):
            self.entropy_coeff = self._check_float(owner, "entropy_coeff", entropy_coeff)
            return
        if not self._composite:
            raise InputError(f"{owner}: entropy_coeff as a mapping needs a composite actor (rlexport.modules.CompositeActor)")
        action = self._k("action")
        names = {}
        for h in self._heads:
            for alias in (h, f"{action}_{h}_entropy"):
                names[alias] = h
        coeffs: dict[str, float] = {}
        for key, value in entropy_coeff.items():
            head = names.get(flatten_key(key))
            if head is None:
                raise InputError(f"{owner}: entropy_coeff names unknown head {key!r}; heads: {self._heads}")
            coeffs[head] = self._check_float(owner, f"entropy_coeff[{key!r}]", value)
        missing = [h for h in self._heads if h not in coeffs]
        if missing:
            raise InputError(f"{owner}: entropy_coeff mapping is missing head {missing[0]!r}; heads: {self._heads}")
        self._entropy_coeff_map = {h: coeffs[h] for h in self._heads}
        self.entropy_coeff = 0.0  # TorchRL: the scalar buffer is 0 when a mapping is given

    def _entropy_hyper_inputs(self) -> list[str]:
        """The ``entropy_coeff`` keyword input (a 0-d tensor) of a scalar coefficient."""
        return [] if self.__dict__.get("_entropy_coeff_map") else ["entropy_coeff"]

    # ---------------------------------------------------------------- input layout
    def _check_layout(self, inputs: Mapping[str, torch.Tensor]) -> None:
        """Refuse, naming the key and both shapes/dtypes, before any network runs:

        - ``advantage``/``value_target``/``state_value`` and ``next_reward``/``next_done``/
          ``next_terminated`` must be ``[*batch, 1]``; the first of them present fixes ``batch``;
        - an empty batch (a dim of 0);
        - ``sample_log_prob`` must be ``[*batch]``; the action ``[*batch]`` for an integer-action
          distribution (Categorical), ``[*batch, *event]`` otherwise, of the dtype the
          distribution takes (integer indices, or floating point);
        - every actor/critic input must start with ``batch`` (and its ``next_`` twin have its
          shape), and every floating input of rank >= 1 must have the actor's parameter dtype.
        """
        owner = type(self).__name__
        trailing = [self._k("advantage"), self._k("value_target"), self._k("value"),
                    self._nk("reward"), self._nk("done"), self._nk("terminated")]
        ref_name = next((k for k in trailing if k in inputs), None)
        if ref_name is None:
            return
        for name in trailing:
            if name in inputs:
                check_trailing_one(owner, name, inputs[name], "[*batch, 1]")
        batch = tuple(inputs[ref_name].shape[:-1])
        check_not_empty(owner, ref_name, inputs[ref_name])

        def mismatch(name: str, expected: str) -> InputError:
            return InputError(
                f"{owner}: input {name!r} has shape {list(inputs[name].shape)} but {ref_name!r} has shape "
                f"{list(inputs[ref_name].shape)}; expected {name!r} to be {expected} with batch {list(batch)}"
            )

        for name in trailing:
            if name in inputs and tuple(inputs[name].shape[:-1]) != batch:
                raise mismatch(name, "[*batch, 1]")
        for name in [self._k("sample_log_prob"), *self._head_log_prob_inputs()]:
            log_prob = inputs.get(name)
            if log_prob is not None and tuple(log_prob.shape) != batch:
                raise mismatch(name, "[*batch]")
        if self._composite:
            kinds = [getattr(c, "action_dtype", None) for c in self.actor_network.distribution_map.values()]
        else:
            kinds = [getattr(getattr(self.actor_network, "distribution_class", None), "action_dtype", None)]
        for action_name, kind in zip(self._action_inputs(), kinds):
            action = inputs.get(action_name)
            if action is None:
                continue
            check_action_dtype(owner, action_name, action, kind)
            if kind == "integer" and tuple(action.shape) != batch:
                raise mismatch(action_name, "[*batch] (category indices)")
            if tuple(action.shape[: len(batch)]) != batch:
                raise mismatch(action_name, "[*batch, *event]")
        net_keys = list(self._actor_in_keys)
        if self.critic_network is not None:
            net_keys += [k for k in self._critic_in_keys if k not in net_keys]
        for name in net_keys:
            for key in (name, "next_" + name):
                if key in inputs and tuple(inputs[key].shape[: len(batch)]) != batch:
                    raise mismatch(key, "[*batch, ...]")
            if "next_" + name in inputs and name in inputs and inputs["next_" + name].shape != inputs[name].shape:
                raise InputError(
                    f"{owner}: input {'next_' + name!r} has shape {list(inputs['next_' + name].shape)} but "
                    f"{name!r} has shape {list(inputs[name].shape)}; they must match"
                )
        dtype = parameter_dtype(self.actor_network)
        if dtype is not None:
            check_network_dtype(owner, inputs, [k for k, v in inputs.items() if v.ndim >= 1], dtype)

    # ---------------------------------------------------------------- networks
    @property
    def _actor_in_keys(self) -> list[str]:
        return _module_in_keys(self.actor_network)

    @property
    def _critic_in_keys(self) -> list[str]:
        return _module_in_keys(self.critic_network)

    def _get_dist(self, inputs: Mapping[str, torch.Tensor]):
        actor = self.actor_network
        if hasattr(actor, "get_dist_from"):  # rlexport's ProbabilisticActor
            return actor.get_dist_from(inputs)
        return actor.get_dist(**{k: inputs[k] for k in _module_in_keys(actor)})

    def _call_critic(
        self, inputs: Mapping[str, torch.Tensor], prefix: str = "", detach_shared: bool = False, critic: nn.Module | None = None,
    ) -> torch.Tensor:
        critic = self.critic_network if critic is None else critic
        tensors = {k: inputs[prefix + k] for k in _module_in_keys(critic)}
        if prefix:  # NaN next observations (after a terminal step) -> the current ones, as TorchRL
            tensors = {k: next_or_current(v, inputs.get(k)) for k, v in tensors.items()}
        if detach_shared and self._critic_shared_params:
            params = {
                name: (p.detach() if name in self._critic_shared_params else p)
                for name, p in critic.named_parameters()
            }
            if hasattr(critic, "in_keys"):
                return torch.func.functional_call(critic, params, args=(), kwargs=tensors)
            return torch.func.functional_call(critic, params, args=tuple(tensors.values()))
        if hasattr(critic, "in_keys"):
            return critic(**tensors)
        return critic(*tensors.values())

    # ---------------------------------------------------------------- steps of the data path
    def _values_and_advantage(self, inputs: Mapping[str, torch.Tensor], need_state_value: bool):
        """``(advantage, value_target, state_value, old_state_value, computed)``.

        ``state_value`` is the critic's prediction with gradients (``None`` unless needed);
        when the advantage is not an input, the estimator runs on the detached critic values
        of ``observation`` and ``next_observation`` and the detached current value stands for
        the old value (TorchRL's estimator writes it over ``state_value``).
        """
        advantage = inputs.get(self._k("advantage"))
        state_value = None
        if need_state_value or advantage is None:
            state_value = self._call_critic(inputs, detach_shared=self.separate_losses)
        if advantage is not None:
            return (
                advantage,
                inputs.get(self._k("value_target")),
                state_value,
                inputs.get(self._k("value")),
                False,
            )
        value_now = state_value.detach()
        # delay_value: the next value from the target copy of the critic (TorchRL's target_params)
        next_value = self._call_critic(inputs, prefix="next_", critic=self._modules.get("target_critic_network")).detach()
        advantage, value_target = self._estimate(inputs, value_now, next_value)
        return advantage.detach(), value_target.detach(), state_value, value_now, True

    def _stored_actions(self, inputs: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
        actions = [inputs[name] for name in self._action_inputs()]
        for name, action in zip(self._action_inputs(), actions):
            if action.requires_grad:
                raise RuntimeError(
                    f"{type(self).__name__}: input {name!r} requires grad; "
                    "pass the stored action (detached), as TorchRL requires"
                )
        return actions

    def _log_prob_heads(self, dist, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A composite actor's ``{head: log pi_head(a_head|s)}``, each ``[*batch]``."""
        return dist.log_prob_composite(dict(zip(self._heads, self._stored_actions(inputs))))

    def _log_prob(self, dist, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``log pi(a|s)`` ``[*batch]``: summed over the heads of a composite actor (TorchRL sums
        the per-head log-probs' features)."""
        if self._composite:
            return dist.log_prob(dict(zip(self._heads, self._stored_actions(inputs))))
        return dist.log_prob(self._stored_actions(inputs)[0])

    def _entropy(self, dist, inputs: Mapping[str, torch.Tensor]):
        """Closed-form entropy, or TorchRL's Monte-Carlo estimate ``-mean_s log p(x_s)`` from
        ``samples_mc_entropy`` reparameterised draws (noise: the ``entropy_noise`` input);
        ``{head: entropy}`` for a composite actor (noise: ``entropy_noise_<head>``)."""
        if self._composite:
            noise = dict(zip(self._heads, (inputs.get(k) for k in self._entropy_noise_inputs())))
            return dist.entropy_composite(self.samples_mc_entropy, noise)
        return entropy_or_estimate(dist, self.samples_mc_entropy, inputs.get(self.ENTROPY_NOISE))

    def _entropy_outputs(self, dist, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``entropy`` (detached mean; summed over heads), ``loss_entropy`` (``-entropy_coeff * H``,
        or ``-sum_h coeff_h * H_h`` with a per-head mapping) and, for a composite actor, the
        per-head entropies (:meth:`_composite_entropy_keys`) as TorchRL writes them."""
        entropy = self._entropy(dist, inputs)
        if not isinstance(entropy, dict):
            return {
                "entropy": mean_all(entropy.detach()),
                "loss_entropy": self._times_hyper("entropy_coeff", inputs, entropy, negate=True),
            }
        out = {key: entropy[h].detach().unsqueeze(-1) for key, h in zip(self._composite_entropy_keys(), self._heads)}
        total = None
        for h in self._heads:
            total = entropy[h] if total is None else total + entropy[h]
        out["entropy"] = mean_all(total.detach())
        coeffs = self.__dict__.get("_entropy_coeff_map")
        if coeffs is None:
            out["loss_entropy"] = self._times_hyper("entropy_coeff", inputs, total, negate=True)
            return out
        loss = None
        for h in self._heads:
            term = -const(coeffs[h], entropy[h]) * entropy[h]
            loss = term if loss is None else loss + term
        out["loss_entropy"] = loss
        return out

    def _critic_loss(
        self,
        inputs: Mapping[str, torch.Tensor],
        state_value: torch.Tensor,
        value_target: torch.Tensor,
        old_state_value: torch.Tensor | None,
        coeff_name: str | None = "critic_coeff",
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Critic loss (times ``critic_coeff``), unreduced ``[*batch, 1]``, and the value clip
        fraction (``None`` without value clipping)."""
        shape = value_target.shape
        if state_value.shape != shape or (old_state_value is not None and old_state_value.shape != shape):
            shapes = {self._k("value_target"): value_target, self._k("value") + " (critic output)": state_value}
            if old_state_value is not None:
                shapes[self._k("value")] = old_state_value
            check_same_shape(type(self).__name__, shapes)  # raises, naming both shapes
        loss_value = distance_loss(value_target, state_value, self.loss_critic_type)
        clip_fraction = None
        if self.clip_value is not None:
            loss_value, clip_fraction = clip_value_loss(
                old_state_value,
                state_value,
                self._hyper("clip_value", inputs, state_value),
                value_target,
                loss_value,
                self.loss_critic_type,
            )
        if coeff_name is not None:
            loss_value = self._times_hyper(coeff_name, inputs, loss_value)
        return loss_value, clip_fraction

    def _batch_shaped_advantage(self, advantage: torch.Tensor, log_prob: torch.Tensor) -> torch.Tensor:
        """The advantage ``[*batch, 1]`` as ``[*batch]``, the log-prob's shape (checked, no broadcast).

        The actor terms are computed batch-shaped: TorchRL unsqueezes the log-prob to
        ``[*batch, 1]`` and squeezes every reduced ``loss_*`` output back, which for
        ``reduction="none"`` cancels and for a mean or sum does not change the number; leaving
        both out spares an autograd node per term.
        """
        self._check_advantage_shape(advantage, (*log_prob.shape, 1))
        return advantage.squeeze(-1)

    def _reduce(self, out: dict[str, torch.Tensor], trailing_dim: frozenset[str] = frozenset({"loss_critic"})) -> dict[str, torch.Tensor]:
        """Reduce every ``loss_*`` output by ``reduction``. Actor terms are batch-shaped; the
        outputs named in ``trailing_dim`` keep the value's ``[*batch, 1]`` and drop that dim after
        the reduction, as TorchRL does."""
        reduction = self.reduction
        reduced = {}
        for key, value in out.items():
            if not key.startswith("loss_") or (value.ndim == 0 and reduction != "none"):
                reduced[key] = value  # a diagnostic, or a 0-d term
            elif key in trailing_dim:
                reduced[key] = reduce_loss(value, reduction)
            else:
                reduced[key] = reduce(value, reduction)
        return reduced

    def _check_advantage(self, advantage: torch.Tensor, log_weight: torch.Tensor) -> None:
        """The advantage must have the log-prob's shape with a trailing dim of 1 (no broadcast)."""
        self._check_advantage_shape(advantage, tuple(log_weight.shape))

    def _check_advantage_shape(self, advantage: torch.Tensor, expected: tuple[int, ...]) -> None:
        if tuple(advantage.shape) != expected:
            raise ValueError(
                f"{type(self).__name__}: {self._k('advantage')!r} has shape {list(advantage.shape)} but the "
                f"log-probability of {self._k('action')!r} with a trailing dim of 1 has shape "
                f"{list(expected)}; they must match (batch shape + (1,))"
            )
