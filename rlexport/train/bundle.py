"""``make_bundle``: everything a host outside Python needs to train an agent, in one folder.

A *training bundle* holds the three ONNX graphs of ``rlexport train --engine onnx`` (acting,
advantage, train step; each with ``X.json`` and a verified golden sample), the initial training
state (parameters + optimizer state, raw little-endian tensors in the golden format), and
``bundle.json``: spaces, rollout shape, minibatching, epochs, learning-rate schedule,
hyper-parameters, normalisation and the state map (which state tensor feeds which graph input,
which train-step output replaces which state tensor). The format is documented in
``docs/bundle.md`` (strict JSON, versioned); ``examples/js/`` is a host that trains from it.

Layout::

    DIR/bundle.json
    DIR/graphs/act.onnx         (+ act.json, act.golden/)   observation, noise -> action, sample_log_prob, state_value
    DIR/graphs/advantage.onnx   (+ .json, .golden/)         rollout [E, T, ...] -> advantage, value_target
    DIR/graphs/train_step.onnx  (+ .json, .golden/)         minibatch + state + hp.* -> losses, grad_norm, new.*
    DIR/state/                  golden-format folder: case "initial", one tensor per state name
    DIR/graphs/aoti/act.pt2, advantage.pt2, train_step.pt2 (+ .json, .golden/ each)
                                with ``formats`` including "aoti": the same three graphs as
                                AOTInductor packages (same inputs and outputs), for a LibTorch host
                                (``examples/cpp/``); built for this machine's CPU and torch version

A bundle made ``from_run`` starts from that run's last checkpoint (parameters, Adam moments and
step, running normalisation statistics, update index), so training continues elsewhere.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rlexport.export import export_aoti, read_golden, write_golden
from rlexport.export.train_step import export_train_step

from .agent import AgentSpec, Sampler, build_agent
from .config import TrainConfig
from .engines import (
    GaeModule,
    WithParams,
    build_loss,
    export_param_graph,
    export_train_step_graph,
    loss_inputs,
    loss_networks,
    named_trainable,
    train_step_hyperparams,
)
from .envs import EnvError, describe_spaces
from .run_folder import RunFolderError, read_run

FORMAT = "rlexport-bundle"
# graph formats a bundle can hold, each under graphs.<role>.<format>; ONNX is always written
GRAPH_FORMATS = ("onnx", "aoti")
GRAPH_FILES = {"onnx": "graphs/{role}.onnx", "aoti": "graphs/aoti/{role}.pt2"}
VERSION = 1
# Running statistics start as Gymnasium's RunningMeanStd (and rlexport.train.envs).
RMS_INITIAL_COUNT = 1e-4
NORM_CLIP, NORM_EPS = 10.0, 1e-8


class BundleError(ValueError):
    """Bad input for a bundle (options, env, output folder, source run): one line, exit 2."""


class ActWithValue(Sampler):
    """``(observation [B, D], noise) -> (action, sample_log_prob [B], state_value [B, 1])``: one
    acting step (``Sampler``: Categorical inverse CDF of uniform noise ``[B]``, or a Gaussian's
    ``loc + scale * noise`` with standard-normal noise ``[B, A]``) and the critic's value of the
    same observation. Attribute names match the loss's, so parameter names do too."""

    def __init__(self, actor: nn.Module, critic: nn.Module, kind: str):
        super().__init__(actor, kind)
        self.critic_network = critic
        self.out_keys = ["action", "sample_log_prob", "state_value"]

    def forward(self, observation: torch.Tensor, noise: torch.Tensor):
        action, log_prob = super().forward(observation, noise)
        return action, log_prob, self.critic_network(observation=observation)


# -- examples for the exporters (shapes and dtypes are what matter; values are plausible) --------


def _example_rollout(spec: AgentSpec, cfg: TrainConfig) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(cfg.seed + 101)
    E, T, D = cfg.num_envs, cfg.num_steps, spec.obs_dim
    done = rng.random((E, T, 1)) < 0.1
    return {
        "observation": rng.standard_normal((E, T, D)).astype(np.float32),
        "next_observation": rng.standard_normal((E, T, D)).astype(np.float32),
        "next_reward": rng.standard_normal((E, T, 1)).astype(np.float32),
        "next_done": done,
        "next_terminated": done & (rng.random((E, T, 1)) < 0.5),
    }


def _example_minibatch(spec: AgentSpec, cfg: TrainConfig, names: list[str]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(cfg.seed + 202)
    n = cfg.minibatch_size
    if spec.discrete:
        action = rng.integers(0, spec.n, size=(n,)).astype(np.int64)
    else:
        unit = np.clip(rng.standard_normal((n, spec.act_dim)), -0.9, 0.9)
        action = (spec.low + (unit + 1) * 0.5 * (spec.high - spec.low)).astype(np.float32)
    columns = {
        "observation": rng.standard_normal((n, spec.obs_dim)).astype(np.float32),
        "action": action,
        "sample_log_prob": (-np.abs(rng.standard_normal(n)) - 0.5).astype(np.float32),
        "advantage": rng.standard_normal((n, 1)).astype(np.float32),
        "value_target": rng.standard_normal((n, 1)).astype(np.float32),
        "state_value": rng.standard_normal((n, 1)).astype(np.float32),
    }
    return {k: columns[k] for k in names}


# -- spaces, normalisation, JSON ------------------------------------------------------------------


def _finite_or_none(values) -> list[float | None]:
    """Box bounds as JSON numbers; an unbounded side (+-inf) is ``null``."""
    return [float(v) if math.isfinite(float(v)) else None for v in np.asarray(values, np.float64).reshape(-1)]


def _spaces(obs_space, act_space, spec: AgentSpec) -> tuple[dict, dict]:
    observation = {"type": "box", "shape": [spec.obs_dim], "dtype": "float32",
                   "low": _finite_or_none(obs_space.low), "high": _finite_or_none(obs_space.high)}
    if spec.discrete:
        action = {"type": "discrete", "n": spec.n, "dtype": "int64"}
    else:
        action = {"type": "box", "shape": [spec.act_dim], "dtype": "float32",
                  "low": _finite_or_none(spec.low), "high": _finite_or_none(spec.high)}
    return observation, action


def _policy(spec: AgentSpec) -> dict:
    if spec.discrete:
        return {"distribution": "categorical", "noise": {"distribution": "uniform", "low": 0.0, "high": 1.0, "shape": ["num_envs"]},
                "env_action": "action as an integer"}
    clip = "clip to [low, high]" if spec.kind == "normal" else "as is (inside the bounds by construction)"
    return {"distribution": spec.kind,
            "noise": {"distribution": "standard_normal", "shape": ["num_envs", spec.act_dim]},
            "env_action": f"action {clip}"}


def _rms(mean, var, count) -> dict:
    return {"mean": [float(x) for x in np.asarray(mean, np.float64).reshape(-1)],
            "var": [float(x) for x in np.asarray(var, np.float64).reshape(-1)], "count": float(count)}


def _normalization(cfg: TrainConfig, spec: AgentSpec, tensors: Mapping[str, np.ndarray] | None) -> dict:
    """``observation``/``reward``: ``null`` when off, else the rule's constants and running stats
    (a fresh run's initial ones, or a checkpoint's)."""
    out: dict[str, Any] = {"observation": None, "reward": None}
    if cfg.normalize_obs:
        if tensors is not None:
            stats = _rms(tensors["obs_rms.mean"], tensors["obs_rms.var"], np.asarray(tensors["obs_rms.count"]).reshape(-1)[0])
        else:
            stats = _rms(np.zeros(spec.obs_dim), np.ones(spec.obs_dim), RMS_INITIAL_COUNT)
        out["observation"] = {"rule": "clip((x - mean) / sqrt(var + eps), -clip, clip); stats updated with each raw observation batch before use",
                              "clip": NORM_CLIP, "eps": NORM_EPS, **stats}
    if cfg.normalize_reward:
        if tensors is not None:
            stats = _rms(tensors["rew_rms.mean"], tensors["rew_rms.var"], np.asarray(tensors["rew_rms.count"]).reshape(-1)[0])
            returns = [float(x) for x in np.asarray(tensors["rew_returns"], np.float64).reshape(-1)]
        else:
            stats = _rms(0.0, 1.0, RMS_INITIAL_COUNT)
            returns = [0.0] * cfg.num_envs
        out["reward"] = {"rule": "returns = returns * gamma + r; update stats with returns; r / sqrt(var + eps) clipped to +-clip; returns[done] = 0",
                         "clip": NORM_CLIP, "eps": NORM_EPS, "gamma": cfg.gamma, "returns": returns, **stats}
    return out


def _strict(value: Any) -> Any:
    """JSON without NaN/Infinity literals: a non-finite float becomes the string "inf"/"-inf"/"nan"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Mapping):
        return {str(k): _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def _graph_entry(name: str, inputs_from_state: Mapping[str, str], formats: tuple[str, ...]) -> dict:
    entry: dict[str, Any] = {}
    for fmt in formats:
        file = GRAPH_FILES[fmt].format(role=name)
        stem = file.rsplit(".", 1)[0]
        entry[fmt] = {"file": file, "meta": f"{stem}.json", "golden": f"{stem}.golden"}
    entry["params"] = dict(inputs_from_state)
    return entry


def _check_formats(formats) -> tuple[str, ...]:
    unknown = [f for f in formats if f not in GRAPH_FORMATS]
    if unknown:
        raise BundleError(f"--format {unknown[0]!r} is not a bundle graph format; choose from {list(GRAPH_FORMATS)}")
    return tuple(f for f in GRAPH_FORMATS if f == "onnx" or f in formats)


def _export_aoti_graphs(tmp: Path, loss: nn.Module, cfg: TrainConfig, minibatch: Mapping[str, np.ndarray],
                        act: WithParams, act_example: Mapping[str, np.ndarray], adv: WithParams,
                        adv_example: Mapping[str, np.ndarray]) -> None:
    """The three graphs again as AOTInductor packages from the same modules and examples (each
    verified against its golden sample by running the package)."""
    folder = tmp / "graphs" / "aoti"
    folder.mkdir()
    as_torch = lambda d: {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in d.items()}  # noqa: E731
    export_train_step(loss, as_torch(minibatch), folder / "train_step.pt2", optimizer="adam",
                      hyperparams=train_step_hyperparams(cfg, cfg.learning_rate), dynamic=True, format="aoti")
    for name, wrapper, example in (("act", act, act_example), ("advantage", adv, adv_example)):
        export_aoti(wrapper, {**wrapper.example_params(), **as_torch(example)}, folder / f"{name}.pt2", dynamic=False)


# -- the bundle ---------------------------------------------------------------------------------


def _prepare_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BundleError(f"output folder {out} exists and is not an empty folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BundleError(f"output folder {out} cannot be created: {err.strerror or err}") from None
    if not os.access(out.parent, os.W_OK):
        raise BundleError(f"output folder {out}: {out.parent} is not writable")


def _read_run(run: str | os.PathLike) -> tuple[TrainConfig, dict[str, np.ndarray], dict[str, Any]]:
    """``(config, checkpoint tensors as numpy, checkpoint metadata)`` of an ``rlexport train`` run
    (``run_folder.read_run``; the previous checkpoint when the latest is damaged)."""
    try:
        folder = read_run(run)
    except RunFolderError as err:
        raise BundleError(f"--from: {err}") from None
    return folder.config, {k: v.numpy() for k, v in folder.tensors.items()}, folder.meta


def make_bundle(cfg: TrainConfig, out: str | os.PathLike, *, from_run: str | os.PathLike | None = None,
                formats: tuple[str, ...] = ("onnx",)) -> Path:
    """Write the training bundle for ``cfg`` (or for the run ``from_run``, whose config and last
    checkpoint it uses; ``cfg`` is then ignored) to the new or empty folder ``out``. ``formats``
    (``GRAPH_FORMATS``): ONNX always; ``"aoti"`` adds AOTInductor packages of the three graphs.

    Everything is written to a temporary folder beside ``out`` and moved into place at the end:
    on any error nothing is left behind. Returns ``out``."""
    out = Path(out)
    formats = _check_formats(formats)
    tensors = meta = None
    if from_run is not None:
        cfg, tensors, meta = _read_run(from_run)
    try:
        cfg.validate()
    except ValueError as err:
        raise BundleError(str(err)) from None
    try:
        obs_space, act_space = describe_spaces(cfg.env_id)
    except EnvError as err:
        raise BundleError(str(err)) from None
    if not isinstance(act_space, (gym.spaces.Discrete, gym.spaces.Box)):
        raise BundleError(f"{cfg.env_id!r} has composite action space {act_space}; training bundles support Discrete and "
                          "flat Box actions (train it with rlexport train)")
    _prepare_out(out)

    spec = AgentSpec(int(obs_space.shape[0]), act_space, cfg.box_distribution)
    actor, critic = build_agent(spec, cfg.hidden, cfg.seed)
    loss = build_loss(cfg, actor, critic)
    actor, critic = loss_networks(loss, actor, critic)
    params = named_trainable(loss)
    if tensors is not None:
        missing = [n for n in params if f"param.{n}" not in tensors or tuple(tensors[f"param.{n}"].shape) != tuple(params[n].shape)]
        if missing:
            raise BundleError(f"--from {from_run}: the checkpoint lacks (or has reshaped) parameters {missing}")
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(torch.from_numpy(np.array(tensors[f"param.{n}"])))

    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        graphs = tmp / "graphs"
        graphs.mkdir()
        batch_names = loss_inputs(loss, cfg)
        minibatch = _example_minibatch(spec, cfg, batch_names)
        export_train_step_graph(loss, minibatch, graphs / "train_step.onnx", cfg)
        ts_meta = json.loads((graphs / "train_step.json").read_text())
        initial = dict(read_golden(graphs / "train_step.golden").initial_state)
        if tensors is not None:  # the run's optimizer state replaces the fresh one
            absent = [k for k in initial if k not in tensors]
            if absent:
                raise BundleError(f"--from {from_run}: the checkpoint lacks the train-step state {absent}")
            initial = {k: np.asarray(tensors[k]).astype(v.dtype).reshape(v.shape) for k, v in initial.items()}

        ex_rollout = _example_rollout(spec, cfg)
        ex_noise = spec.draw_noise(np.random.default_rng(cfg.seed + 303), cfg.num_envs)
        act_example = {"observation": ex_rollout["observation"][:, 0], "noise": ex_noise}
        adv_example = {k: ex_rollout[k] for k in GaeModule.IN_KEYS}
        act = export_param_graph(ActWithValue(actor, critic, spec.kind), act_example, graphs / "act.onnx")
        adv = export_param_graph(GaeModule(critic, cfg.gamma, cfg.gae_lambda), adv_example, graphs / "advantage.onnx")
        for name, wrapper in (("act", act), ("advantage", adv)):
            unknown = [s for s in wrapper.state_names.values() if s not in initial]
            if unknown:
                raise BundleError(f"{name} graph: parameter inputs {unknown} are not train-step state")

        if "aoti" in formats:
            _export_aoti_graphs(tmp, loss, cfg, minibatch, act, act_example, adv, adv_example)
        write_golden(tmp / "state", [("initial", initial, {})], artifact="../bundle.json", kind="state", rtol=0.0, atol=0.0)
        doc = bundle_document(cfg, spec, obs_space, act_space, ts_meta, act.state_names, adv.state_names,
                              batch_names, tensors, meta, from_run, formats)
        (tmp / "bundle.json").write_text(json.dumps(_strict(doc), indent=2, allow_nan=False) + "\n")
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def bundle_document(cfg: TrainConfig, spec: AgentSpec, obs_space, act_space, ts_meta: Mapping[str, Any],
                    act_params: Mapping[str, str], adv_params: Mapping[str, str], batch_names: list[str],
                    tensors: Mapping[str, np.ndarray] | None, meta: Mapping[str, Any] | None,
                    from_run: str | os.PathLike | None, formats: tuple[str, ...] = ("onnx",)) -> dict[str, Any]:
    """``bundle.json``'s content (see docs/bundle.md)."""
    observation, action = _spaces(obs_space, act_space, spec)
    start_update = int(meta["update"]) if meta else 0
    start_step = int(meta["global_step"]) if meta else 0
    return {
        "format": FORMAT,
        "version": VERSION,
        "env": {"id": cfg.env_id, "observation": observation, "action": action,
                "autoreset": "same_step: a step that ends an episode returns the next episode's first observation; "
                             "the real last observation is next_observation"},
        "algo": cfg.algo,
        "seed": cfg.seed,
        "policy": _policy(spec),
        "rollout": {"num_envs": cfg.num_envs, "num_steps": cfg.num_steps, "batch_size": cfg.batch_size,
                    "advantage_shape": "static"},
        "update": {"epochs": cfg.update_epochs, "num_minibatches": cfg.num_minibatches,
                   "minibatch_size": cfg.minibatch_size, "shuffle": "a fresh permutation of the batch per epoch",
                   "remainder": "a last minibatch shorter than minibatch_size is skipped (unless it is the only one)",
                   "batch": batch_names},
        "schedule": {"total_steps": cfg.total_steps, "num_updates": cfg.num_updates,
                     "lr": {"kind": "linear" if cfg.anneal_lr else "constant", "initial": cfg.learning_rate,
                            "final": 0.0 if cfg.anneal_lr else cfg.learning_rate,
                            "rule": "lr = initial * max(0, 1 - update / num_updates)" if cfg.anneal_lr else "lr = initial"},
                     "start_update": start_update, "start_step": start_step},
        "hyperparams": {
            "gamma": cfg.gamma, "gae_lambda": cfg.gae_lambda, "clip_coef": cfg.clip_coef, "clip_vloss": cfg.clip_vloss,
            "norm_adv": cfg.norm_adv, "ent_coef": cfg.ent_coef, "vf_coef": cfg.vf_coef,
            "max_grad_norm": cfg.max_grad_norm, "adam_eps": cfg.adam_eps, "hidden": list(cfg.hidden),
            "train_step": dict(ts_meta.get("hyperparams", {})),
        },
        "normalization": _normalization(cfg, spec, tensors),
        "graphs": {
            "act": _graph_entry("act", act_params, formats),
            "advantage": _graph_entry("advantage", adv_params, formats),
            "train_step": _graph_entry("train_step", {}, formats),
        },
        "state": {"dir": "state", "case": "initial", "names": sorted(ts_meta["state"]),
                  "train_step_updates": dict(ts_meta["state"])},
        "feeds": {
            "act": {"observation": "current (normalised) observations [num_envs, obs_dim]",
                    "noise": "fresh noise (policy.noise) [num_envs(, act_dim)]"},
            "advantage": {k: f"rollout.{k} [num_envs, num_steps, ...]" for k in GaeModule.IN_KEYS},
            "train_step": {
                "observation": "rollout.observation flattened to [batch, obs_dim]",
                "action": "rollout.action flattened", "sample_log_prob": "rollout.sample_log_prob flattened",
                "advantage": "advantage output flattened to [batch, 1]",
                "value_target": "value_target output flattened to [batch, 1]",
                "state_value": "value_target - advantage (float32), flattened to [batch, 1]",
                "hp.lr": "the schedule's lr for this update",
            },
        },
        "source": {"run": str(from_run) if from_run is not None else None},
    }
