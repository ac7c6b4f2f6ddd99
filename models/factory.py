"""Build an exportable module and its example from names: a model preset (or a training run), a
loss or an estimator, options, and optionally a checkpoint.

The loss/estimator factory of the ``to-onnx``/``export``/``check-estimator`` commands (and of
anything else that needs "the clip-PPO loss of the cartpole preset"):

- ``LOSSES``: CLI name -> loss class; ``ESTIMATORS``: CLI name -> ``rlexport.value.ValueEstimators``
  member (the classes come from ``rlexport.value.ESTIMATOR_CLASSES``, the one table).
- ``build_module(BuildSpec(...))`` -> ``Built(module, example, spec, networks)``.
- ``build_estimator(name, ...)`` + ``estimator_example(...)``: an estimator fed ``state_value`` /
  ``next_state_value`` directly (no value network), with ``[B, T, 1]`` example inputs.
- Checkpoints: a ``torch.save``d ``{"actor": ..., "critic": ...}`` file (weights only) for a
  preset's networks, or a training run (its folder or ``checkpoints/latest.safetensors``), whose
  networks are rebuilt from the run's ``config.json`` and loaded from the safetensors file.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rlexport.inputs import flatten_key
from rlexport.models.presets import ActorCritic, get_preset, list_presets
from rlexport.objectives import A2CLoss, ClipPPOLoss, KLPENPPOLoss, PPOLoss, kl_divergence
from rlexport.train.agent import AgentSpec, build_agent
from rlexport.train.run_folder import RunFolderError, read_run
from rlexport.train.envs import EnvError, describe_spaces
from rlexport.value import ESTIMATOR_CLASSES, ValueEstimators, VTrace, default_value_kwargs

__all__ = [
    "LOSSES", "ESTIMATORS", "DEFAULT_TIME", "BuildError", "BuildSpec", "Built", "build_module", "build_estimator",
    "estimator_example", "load_checkpoint", "load_run", "is_run_checkpoint", "complete_loss_example",
    "max_steps_for_horizon",
]

LOSSES: dict[str, type[nn.Module]] = {
    "clip-ppo": ClipPPOLoss,
    "ppo": PPOLoss,
    "kl-ppo": KLPENPPOLoss,
    "a2c": A2CLoss,
}
ESTIMATORS: dict[str, ValueEstimators] = {
    "gae": ValueEstimators.GAE,
    "td0": ValueEstimators.TD0,
    "td1": ValueEstimators.TD1,
    "td-lambda": ValueEstimators.TDLambda,
    "vtrace": ValueEstimators.VTrace,
}
DEFAULT_TIME = 16  # example horizon when there is a time axis and none is given
_NETWORK_ARGS = ("self", "actor_network", "critic_network", "value_network", "actor")


class BuildError(ValueError):
    """A bad combination of names and options; the message says which and what is allowed."""


@dataclass
class BuildSpec:
    """What to build. ``preset`` may be ``None`` when ``checkpoint`` is a training run."""

    preset: str | None
    loss: str | None = None
    estimator: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # loss constructor options (TorchRL names)
    estimator_options: dict[str, Any] = field(default_factory=dict)  # gamma, lmbda, ...
    preset_options: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | os.PathLike | None = None
    batch: int = 8
    time: int | None = None  # horizon of the example; DEFAULT_TIME when there is a time axis
    seed: int = 0
    max_horizon: int | None = None  # longest horizon the exported estimator computes exactly

    @property
    def description(self) -> str:
        what = self.loss or self.estimator or "?"
        extra = f"+{self.estimator}" if self.loss and self.estimator else ""
        source = self.preset or (Path(self.checkpoint).name if self.checkpoint is not None else "?")
        return f"{source}-{what}{extra}"


@dataclass
class Built:
    module: nn.Module
    example: dict[str, torch.Tensor]
    spec: BuildSpec
    networks: ActorCritic | None = None


def max_steps_for_horizon(horizon: int) -> int:
    """``max_steps = ceil(log2 horizon)``: the doubling steps an exported estimator needs to be
    exact up to ``horizon`` (``rlexport.value.scan``: exact up to ``2**max_steps``, NaN beyond).
    ``horizon`` must be an integer >= 2."""
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 2:
        raise BuildError(f"max_horizon={horizon!r}: give the longest horizon to export for, an integer >= 2")
    return max(1, math.ceil(math.log2(horizon)))


# -- networks: a preset, a torch.save checkpoint, or a training run ---------------------------


def _preset_networks(name: str, options: Mapping[str, Any], seed: int) -> ActorCritic:
    if name not in list_presets():
        raise BuildError(f"preset {name!r} is not known; choose one of {list_presets()}")
    preset = get_preset(name)
    kwargs = dict(options)
    params = inspect.signature(preset.build).parameters
    kwargs.setdefault("seed", seed)
    unknown = [k for k in kwargs if k not in params]
    if unknown:
        raise BuildError(f"preset {name!r} does not take option {unknown[0]!r}; it takes {[p for p in params if p != 'self']}")
    torch.manual_seed(seed)
    return preset.build(**kwargs)


def is_run_checkpoint(path: str | os.PathLike) -> bool:
    """A training run's folder or its ``.safetensors`` checkpoint (not a ``torch.save`` file)."""
    path = Path(path)
    return path.is_dir() or path.suffix == ".safetensors"


def load_run(path: str | os.PathLike) -> ActorCritic:
    """The trained networks of an ``rlexport train`` run: ``path`` is the run folder or a
    ``.safetensors`` checkpoint inside ``RUN/checkpoints/``. The networks are rebuilt from the
    run's ``config.json`` (environment spaces, ``hidden``, ``box_distribution``, seed) and their
    parameters loaded from the checkpoint's ``param.actor_network.*``/``param.critic_network.*``
    tensors, shape-checked. With ``normalize_obs`` the networks take normalised observations, as
    the loss did in training."""
    try:
        run = read_run(path, fallback=False)
        obs_space, action_space = describe_spaces(run.config.env_id)
    except (RunFolderError, EnvError) as err:
        raise BuildError(f"checkpoint {path}: {err}") from err
    cfg, tensors, ckpt = run.config, run.tensors, run.checkpoint
    spec = AgentSpec(int(obs_space.shape[0]), action_space, cfg.box_distribution)
    actor, critic = build_agent(spec, cfg.hidden, cfg.seed)
    for prefix, module in (("param.actor_network.", actor), ("param.critic_network.", critic)):
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        _load_state(module, state, f"checkpoint {ckpt}: {prefix[6:-1]}")
    kind = {"categorical": "discrete"}.get(spec.kind, "continuous")
    distribution = {"categorical": "Categorical", "normal": "IndependentNormal", "tanh_normal": "TanhNormal"}[spec.kind]
    return ActorCritic(name=cfg.env_id, actor=actor, critic=critic, obs_dim=spec.obs_dim,
                       action_dim=spec.n if spec.discrete else spec.act_dim, action_kind=kind,
                       distribution=distribution, dtype=torch.float32)


def _load_state(module: nn.Module, state: Mapping[str, Any], what: str) -> None:
    """``module.load_state_dict(state)`` after checking names and shapes (one line on a mismatch)."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise BuildError(
            f"{what} does not match the network"
            + (f"; missing {missing[:5]}" if missing else "")
            + (f"; unexpected {unexpected[:5]}" if unexpected else "")
        )
    for k, v in state.items():
        if not isinstance(v, torch.Tensor) or tuple(v.shape) != tuple(own[k].shape):
            shape = list(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise BuildError(f"{what}.{k} has shape {shape}, the network expects {list(own[k].shape)}")
    module.load_state_dict(dict(state), strict=True)


def load_checkpoint(networks: ActorCritic, path: str | os.PathLike) -> None:
    """Load actor/critic weights saved with ``torch.save`` into a preset's networks, shape-checked.

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
        _load_state(getattr(networks, part), sd, f"checkpoint {path}: {part}")


def _networks(spec: BuildSpec) -> ActorCritic:
    if spec.checkpoint is not None and is_run_checkpoint(spec.checkpoint):
        if spec.preset is not None:
            raise BuildError(f"--preset {spec.preset} and the training run {spec.checkpoint}: the run defines the "
                             "networks; drop --preset")
        return load_run(spec.checkpoint)
    if spec.preset is None:
        raise BuildError(f"name a model preset (--preset {'|'.join(list_presets())}) or give a training run as --checkpoint")
    networks = _preset_networks(spec.preset, spec.preset_options, spec.seed)
    if spec.checkpoint is not None:
        load_checkpoint(networks, spec.checkpoint)
    return networks


# -- modules and examples -----------------------------------------------------------------------


def _accepted(cls, options: Mapping[str, Any], what: str) -> dict[str, Any]:
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return dict(options)
    unknown = [k for k in options if k not in params]
    if unknown:
        raise BuildError(
            f"{what} does not take option {unknown[0]!r} (--{unknown[0].replace('_', '-')}); "
            f"its options: {[p for p in params if p not in _NETWORK_ARGS]}"
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
    out = dict(example)
    if keys is not None:
        keys = {flatten_key(k) for k in keys}
        out = {k: v for k, v in example.items() if k in keys}
    return {k: v for k, v in out.items() if k not in drop}


def _check_names(spec: BuildSpec) -> None:
    if spec.loss is None and spec.estimator is None:
        raise BuildError(f"name a loss (--loss {'|'.join(LOSSES)}) or an estimator (--estimator {'|'.join(ESTIMATORS)})")
    if spec.loss is not None and spec.loss not in LOSSES:
        raise BuildError(f"loss {spec.loss!r} is not known; choose one of {list(LOSSES)}")
    if spec.estimator is not None and spec.estimator not in ESTIMATORS:
        raise BuildError(f"estimator {spec.estimator!r} is not known; choose one of {list(ESTIMATORS)}")
    if spec.batch < 2:
        raise BuildError(f"batch={spec.batch}: use an example batch of at least 2 (size-1 dims are specialised)")


def build_module(spec: BuildSpec) -> Built:
    """The module named by ``spec`` and an example of its keyword inputs."""
    _check_names(spec)
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
    networks = _networks(spec)
    actor, critic = networks.actor, networks.critic
    time_axis = spec.estimator is not None
    T = spec.time
    if T is None and time_axis:
        T = min(DEFAULT_TIME, 2 ** spec.estimator_options["max_steps"]) if "max_steps" in spec.estimator_options else DEFAULT_TIME
    if T is not None and T < 2:
        raise BuildError(f"time={T}: use an example horizon of at least 2")
    torch.manual_seed(spec.seed + 1)
    example = dict(networks.example_inputs(spec.batch, time=T) if T is not None else networks.example_inputs(spec.batch))

    if spec.loss is None:
        member = ESTIMATORS[spec.estimator]
        cls = ESTIMATOR_CLASSES[member]
        opts = _accepted(cls, spec.estimator_options, cls.__name__)
        params = inspect.signature(cls.__init__).parameters
        for k, v in default_value_kwargs(member).items():  # TorchRL's defaults (gamma 0.99, lmbda 0.95, ...)
            if k in params:
                opts.setdefault(k, v)
        if "actor_network" in params:
            opts.setdefault("actor_network", actor)
        try:
            module = cls(value_network=critic, **opts)
        except (TypeError, ValueError) as err:
            raise BuildError(f"{cls.__name__}: {err}") from err
        src = getattr(actor, "log_prob_key", None)
        if src in example and src != "sample_log_prob":
            example["sample_log_prob"] = example.pop(src)
        drop = ("state_value", "next_state_value", "advantage", "value_target")
        if member is not ValueEstimators.VTrace:
            drop += ("sample_log_prob", "action")
        return Built(module, _select(example, module, drop=drop), spec, networks)

    cls = LOSSES[spec.loss]
    opts = _accepted(cls, spec.options, cls.__name__)
    try:
        module = cls(actor, critic, **opts)
        if spec.estimator is not None:
            module.make_value_estimator(ESTIMATORS[spec.estimator], **spec.estimator_options)
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
    # only what this configuration reads: required inputs, the advantage and the noise inputs
    keep = set(module._required_inputs(example)) | {"advantage", "entropy_noise", "kl_noise", "beta"}
    example = {k: v for k, v in example.items() if k in keep}
    return Built(module, _select(example, module), spec, networks)


def complete_loss_example(module: nn.Module, actor: nn.Module, example: dict[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    """Make a preset's example fit a loss: rename the log-prob key to the loss's, add the old
    policy's distribution parameters a KL loss needs (the actor's, slightly perturbed), and the
    Monte-Carlo noise inputs (``entropy_noise``, ``kl_noise``) when the distribution has no
    closed form, so that the exported graph is deterministic, and KL-PPO's 0-d ``beta`` input."""
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
            kl_divergence(dist, dist)
        except NotImplementedError:
            n = int(getattr(module, "samples_mc_kl", 1))
            example["kl_noise"] = torch.randn((n, *action.shape), generator=gen, dtype=action.dtype)
    beta = getattr(module, "beta", None)
    if "beta" in getattr(module, "in_keys", []) and "beta" not in example and obs_keys:
        # KL-PPO's β is an input of the graph (0-d, the module's current value), β_next an output
        example["beta"] = beta.detach().to(next(iter(obs_keys.values())).dtype).reshape(())
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


# -- estimators fed values directly ---------------------------------------------------------------


def build_estimator(name: str, *, gamma: float = 0.99, lmbda: float = 0.95, max_steps: int | None = None,
                    differentiable: bool = False) -> nn.Module:
    """The estimator ``name`` (a key of ``ESTIMATORS``) without a value network: it takes
    ``state_value``/``next_state_value`` as inputs. ``lmbda`` applies to gae and td-lambda;
    ``differentiable=False`` (TorchRL's class default) computes under ``torch.no_grad``."""
    if name not in ESTIMATORS:
        raise BuildError(f"estimator {name!r} is not known; choose one of {list(ESTIMATORS)}")
    member = ESTIMATORS[name]
    cls = ESTIMATOR_CLASSES[member]
    options: dict[str, Any] = {"gamma": gamma, "differentiable": differentiable}
    if "lmbda" in default_value_kwargs(member):
        options["lmbda"] = lmbda
    if max_steps is not None:
        options["max_steps"] = max_steps
    try:
        return cls(**options)
    except (TypeError, ValueError) as err:
        raise BuildError(f"{cls.__name__}: {err}") from err


def estimator_example(estimator: nn.Module, batch: int, horizon: int, dtype: torch.dtype = torch.float32,
                      seed: int = 0) -> dict[str, torch.Tensor]:
    """Random keyword inputs for an estimator of ``build_estimator``: ``[batch, horizon, 1]``
    rewards, values and done/terminated flags (5 % done, half of them terminated); V-trace adds
    ``[batch, horizon]`` ``sample_log_prob``/``target_log_prob``. Drawn in float64, then cast."""
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, horizon, 1)
    rnd = lambda: torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)  # noqa: E731
    done = torch.rand(shape, generator=gen) < 0.05
    inputs = {
        "next_reward": rnd(),
        "next_done": done,
        "next_terminated": done & (torch.rand(shape, generator=gen) < 0.5),
        "state_value": rnd(),
        "next_state_value": rnd(),
    }
    if isinstance(estimator, VTrace):
        inputs["sample_log_prob"] = (0.3 * torch.randn((batch, horizon), generator=gen, dtype=torch.float64)).to(dtype)
        inputs["target_log_prob"] = (0.3 * torch.randn((batch, horizon), generator=gen, dtype=torch.float64)).to(dtype)
    return inputs
