"""Build an exportable module and its example from names: a model preset, a loss or an estimator,
options, and optionally a checkpoint. Shared by the ``to-onnx`` / ``export`` commands (and anything
else that needs "the clip-PPO loss of the cartpole preset")."""

from __future__ import annotations

import importlib
import inspect
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

LOSSES = {
    "clip-ppo": "ClipPPOLoss",
    "ppo": "PPOLoss",
    "kl-ppo": "KLPENPPOLoss",
    "a2c": "A2CLoss",
}
ESTIMATORS = {
    "gae": "GAE",
    "td0": "TD0Estimator",
    "td1": "TD1Estimator",
    "td-lambda": "TDLambdaEstimator",
    "vtrace": "VTrace",
}
# ValueEstimators enum member names, for make_value_estimator
ESTIMATOR_ENUM = {"gae": "GAE", "td0": "TD0", "td1": "TD1", "td-lambda": "TDLambda", "vtrace": "VTrace"}
PRESETS = ("cartpole", "pendulum", "mujoco")
ESTIMATOR_OPTIONS = ("gamma", "lmbda", "average_gae", "time_dim", "max_steps")
DEFAULT_TIME = 16  # example horizon when there is a time axis and none is given


class BuildError(ValueError):
    """A bad combination of names and options; the message says which and what is allowed."""


@dataclass
class BuildSpec:
    preset: str
    loss: str | None = None
    estimator: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # loss constructor options (TorchRL names)
    estimator_options: dict[str, Any] = field(default_factory=dict)  # gamma, lmbda, ...
    preset_options: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | os.PathLike | None = None
    batch: int = 8
    time: int | None = None  # horizon of the example; default 16 when there is a time axis
    seed: int = 0
    max_horizon: int | None = None  # longest horizon the exported estimator computes exactly

    @property
    def description(self) -> str:
        what = self.loss or self.estimator or "?"
        extra = f"+{self.estimator}" if self.loss and self.estimator else ""
        return f"{self.preset}-{what}{extra}"


@dataclass
class Built:
    module: nn.Module
    example: dict[str, torch.Tensor]
    spec: BuildSpec
    preset: Any = None


def max_steps_for_horizon(horizon: int) -> int:
    """``max_steps = ceil(log2 horizon)``: the doubling steps an exported estimator needs to be
    exact up to ``horizon`` (``rlexport.value.scan``: exact up to ``2**max_steps``, NaN beyond).
    ``horizon`` must be an integer >= 2."""
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 2:
        raise BuildError(f"max_horizon={horizon!r}: give the longest horizon to export for, an integer >= 2")
    return max(1, math.ceil(math.log2(horizon)))


def _get_preset(name: str, options: Mapping[str, Any], seed: int):
    if name not in PRESETS:
        raise BuildError(f"preset {name!r} is not known; choose one of {list(PRESETS)}")
    try:
        presets = importlib.import_module("rlexport.models.presets")
    except ImportError as err:
        raise BuildError(f"the model presets are not available ({err})") from err
    preset = presets.get_preset(name)
    kwargs = dict(options)
    params = inspect.signature(preset.build).parameters
    if "seed" in params and "seed" not in kwargs:
        kwargs["seed"] = seed
    unknown = [k for k in kwargs if k not in params and not any(p.kind == p.VAR_KEYWORD for p in params.values())]
    if unknown:
        raise BuildError(f"preset {name!r} does not take option {unknown[0]!r}; it takes {[p for p in params if p != 'self']}")
    torch.manual_seed(seed)
    return preset.build(**kwargs)


def load_checkpoint(built, path: str | os.PathLike) -> None:
    """Load actor/critic weights saved with ``torch.save`` into the preset's modules, shape-checked.

    The file holds ``{"actor": state_dict, "critic": state_dict}`` (extra entries are ignored) or
    one flat state dict with ``actor.``/``critic.`` prefixes. Loaded with ``weights_only=True``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - pickle errors of many kinds
        raise BuildError(f"checkpoint {path} cannot be read as a weights-only torch.save file: {err}") from err
    if not isinstance(state, Mapping):
        raise BuildError(f"checkpoint {path} holds a {type(state).__name__}, expected a dict with 'actor' and 'critic'")
    for prefix in ("model", "state_dict", "models"):
        if prefix in state and isinstance(state[prefix], Mapping) and "actor" not in state:
            state = state[prefix]
    parts: dict[str, Mapping] = {}
    for part in ("actor", "critic"):
        if isinstance(state.get(part), Mapping):
            parts[part] = state[part]
        else:
            flat = {k[len(part) + 1 :]: v for k, v in state.items() if isinstance(k, str) and k.startswith(part + ".")}
            if flat:
                parts[part] = flat
    if not parts:
        raise BuildError(f"checkpoint {path} has no 'actor' or 'critic' state dict (keys: {list(state)[:10]})")
    for part, sd in parts.items():
        module = getattr(built, part)
        own = module.state_dict()
        missing = [k for k in own if k not in sd]
        unexpected = [k for k in sd if k not in own]
        if missing or unexpected:
            raise BuildError(
                f"checkpoint {path}: {part} state dict does not match the preset"
                + (f"; missing {missing[:5]}" if missing else "")
                + (f"; unexpected {unexpected[:5]}" if unexpected else "")
            )
        for k, v in sd.items():
            if not isinstance(v, torch.Tensor) or tuple(v.shape) != tuple(own[k].shape):
                shape = list(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
                raise BuildError(f"checkpoint {path}: {part}.{k} has shape {shape}, the preset expects {list(own[k].shape)}")
        module.load_state_dict(sd, strict=True)


def _accepted(cls, options: Mapping[str, Any], what: str) -> dict[str, Any]:
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return dict(options)
    unknown = [k for k in options if k not in params]
    if unknown:
        raise BuildError(
            f"{what} does not take option {unknown[0]!r} (--{unknown[0].replace('_', '-')}); "
            f"its options: {[p for p in params if p not in ('self', 'actor_network', 'critic_network', 'value_network', 'actor')]}"
        )
    return dict(options)


def _select(example: Mapping[str, torch.Tensor], module: nn.Module, drop: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """The example entries the module accepts (``accepted_keys`` or ``in_keys``)."""
    keys = None
    for attr in ("accepted_keys", "in_keys"):
        value = getattr(module, attr, None)
        if value is not None:
            keys = list(value() if callable(value) else value)
            break
    from rlexport.inputs import flatten_key

    out = dict(example)
    if keys is not None:
        keys = {flatten_key(k) for k in keys}
        out = {k: v for k, v in example.items() if k in keys}
    return {k: v for k, v in out.items() if k not in drop}


def build_module(spec: BuildSpec) -> Built:
    """The module named by ``spec`` and an example of its keyword inputs."""
    if (spec.loss is None) == (spec.estimator is None) and spec.loss is None:
        raise BuildError("name a loss (--loss) or an estimator (--estimator)")
    if spec.loss is not None and spec.loss not in LOSSES:
        raise BuildError(f"loss {spec.loss!r} is not known; choose one of {list(LOSSES)}")
    if spec.estimator is not None and spec.estimator not in ESTIMATORS:
        raise BuildError(f"estimator {spec.estimator!r} is not known; choose one of {list(ESTIMATORS)}")
    if spec.batch < 2:
        raise BuildError(f"batch={spec.batch}: use an example batch of at least 2 (size-1 dims are specialised)")
    if spec.max_horizon is not None:
        if spec.estimator is None:
            raise BuildError("max_horizon bounds an estimator's horizon: name an estimator (--estimator)")
        steps = max_steps_for_horizon(spec.max_horizon)
        given = spec.estimator_options.get("max_steps")
        if given is not None and given != steps:
            raise BuildError(f"max_horizon={spec.max_horizon} means max_steps={steps}, but max_steps={given} is given too")
        spec.estimator_options = {**spec.estimator_options, "max_steps": steps}
        if spec.time is not None and spec.time > 2**steps:
            raise BuildError(f"time={spec.time} is longer than max_horizon={spec.max_horizon} (exact up to {2**steps})")
    built = _get_preset(spec.preset, spec.preset_options, spec.seed)
    if spec.checkpoint is not None:
        load_checkpoint(built, spec.checkpoint)
    actor, critic = built.actor, built.critic
    time_axis = spec.estimator is not None
    T = spec.time if spec.time is not None else (min(DEFAULT_TIME, 2 ** spec.estimator_options["max_steps"]) if time_axis
                                                 and "max_steps" in spec.estimator_options else (DEFAULT_TIME if time_axis else None))
    if T is not None and T < 2:
        raise BuildError(f"time={T}: use an example horizon of at least 2")
    torch.manual_seed(spec.seed + 1)
    example = dict(built.example_inputs(spec.batch, time=T) if T is not None else built.example_inputs(spec.batch))

    if spec.loss is None:
        value = importlib.import_module("rlexport.value")
        cls = getattr(value, ESTIMATORS[spec.estimator])
        opts = _accepted(cls, spec.estimator_options, cls.__name__)
        params = inspect.signature(cls.__init__).parameters
        if hasattr(value, "default_value_kwargs"):  # TorchRL's defaults (gamma 0.99, lmbda 0.95, ...)
            for k, v in value.default_value_kwargs(ESTIMATOR_ENUM[spec.estimator].lower()).items():
                if k in params:
                    opts.setdefault(k, v)
        if "actor_network" in params:
            opts.setdefault("actor_network", actor)
        try:
            module = cls(value_network=critic, **opts) if "value_network" in params else cls(**opts)
        except (TypeError, ValueError) as err:
            raise BuildError(f"{cls.__name__}: {err}") from err
        src = getattr(actor, "log_prob_key", None)
        if src in example and src != "sample_log_prob":
            example["sample_log_prob"] = example.pop(src)
        drop = ("state_value", "next_state_value", "advantage", "value_target")
        if spec.estimator != "vtrace":
            drop += ("sample_log_prob", "action")
        return Built(module, _select(example, module, drop=drop), spec, built)

    cls = getattr(importlib.import_module("rlexport.objectives"), LOSSES[spec.loss])
    opts = _accepted(cls, spec.options, cls.__name__)
    try:
        module = cls(actor, critic, **opts)
        if spec.estimator is not None:
            enum = getattr(importlib.import_module("rlexport.value"), "ValueEstimators")
            module.make_value_estimator(getattr(enum, ESTIMATOR_ENUM[spec.estimator]), **spec.estimator_options)
    except (TypeError, ValueError) as err:
        raise BuildError(f"{cls.__name__}: {err}") from err
    if spec.estimator is not None:
        drop = ("advantage", "value_target", "state_value", "next_state_value")
    else:
        if spec.estimator_options:
            raise BuildError(f"options {list(spec.estimator_options)} need an in-graph estimator (--estimator)")
        drop = ()
        if "advantage" not in example or "value_target" not in example:
            example = _with_targets(example)
    example = complete_loss_example(module, actor, example, seed=spec.seed)
    example = {k: v for k, v in example.items() if k not in drop}
    if hasattr(module, "_required_inputs"):
        # only what this configuration reads: required inputs, the advantage and the noise inputs
        keep = set(module._required_inputs(example)) | {"advantage", "entropy_noise", "kl_noise"}
        example = {k: v for k, v in example.items() if k in keep}
    return Built(module, _select(example, module), spec, built)


def complete_loss_example(module: nn.Module, actor: nn.Module, example: dict[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    """Make a preset's example fit a loss: rename the log-prob key to the loss's, add the old
    policy's distribution parameters a KL loss needs (the actor's, slightly perturbed), and the
    Monte-Carlo noise inputs (``entropy_noise``, ``kl_noise``) when the distribution has no
    closed form, so that the exported graph is deterministic."""
    from rlexport.inputs import flatten_key

    example = dict(example)
    accepted = [flatten_key(k) for k in getattr(module, "accepted_keys", [])]
    log_prob_in = next((k for k in accepted if k.endswith("log_prob")), None)
    src = getattr(actor, "log_prob_key", None)
    if log_prob_in and log_prob_in not in example and src in example:
        example[log_prob_in] = example.pop(src)
    gen = torch.Generator().manual_seed(seed + 11)
    obs_keys = {k: example[k] for k in getattr(actor, "in_keys", ["observation"]) if k in example}
    required = module._required_inputs(example) if hasattr(module, "_required_inputs") else []
    missing = [k for k in required if k not in example]
    with torch.no_grad():
        params = actor.dist_params(**obs_keys) if missing and hasattr(actor, "dist_params") else {}
        for k in missing:
            if k in params:
                p = params[k]
                noise = 0.05 * torch.randn(p.shape, generator=gen, dtype=p.dtype)
                example[k] = p * noise.exp() if k == "scale" else p + noise
        dist = actor.get_dist(**obs_keys)
    action = example.get("action")
    if action is not None and "entropy_noise" in accepted and "entropy_noise" not in example:
        try:
            dist.entropy()
        except NotImplementedError:
            n = int(getattr(module, "samples_mc_entropy", 1))
            shape = (n, *action.shape) if action.dtype.is_floating_point else None
            if shape is not None:
                example["entropy_noise"] = torch.randn(shape, generator=gen, dtype=action.dtype)
    if action is not None and "kl_noise" in accepted and "kl_noise" not in example and action.dtype.is_floating_point:
        try:
            from rlexport.objectives import kl_divergence

            kl_divergence(dist, dist)
        except NotImplementedError:
            n = int(getattr(module, "samples_mc_kl", 1))
            example["kl_noise"] = torch.randn((n, *action.shape), generator=gen, dtype=action.dtype)
        except Exception:  # noqa: BLE001 - signature differences: leave it to the loss
            pass
    return example


def _with_targets(example: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-step examples without an estimator take ``advantage`` and ``value_target`` as inputs."""
    ref = example.get("next_reward")
    ref = example.get("state_value") if ref is None else ref
    if ref is None:
        batch = next(iter(example.values())).shape[:1]
        shape = (*batch, 1)
    else:
        shape = ref.shape
    gen = torch.Generator().manual_seed(7)
    example.setdefault("advantage", torch.randn(shape, generator=gen))
    example.setdefault("value_target", torch.randn(shape, generator=gen))
    return example
