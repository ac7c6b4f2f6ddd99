"""The end of a run: exported artifacts with golden samples and a validation report.

``RUN/artifacts/``:

* ``policy.onnx`` - the deployable greedy policy: raw observation ``[B, obs_dim]`` -> ``action``
  (observation normalisation with the final running statistics baked in; Box actions clipped to
  the bounds for ``normal``). Dynamic batch.
* ``loss.onnx`` - the PPO/A2C loss with the final parameters, on a minibatch of the last rollout.
* ``train_step.onnx`` - loss + gradients + clipping + Adam as one graph (params, Adam state and
  hyper-parameters are inputs, dynamic batch). ONNX engine: a copy of the graph the run trained
  with (``graphs/train_step.onnx``, exported once at start-up, golden sample from the parameters
  it started from, or from the graph cache: those of the run that first exported it); torch engine: exported here, golden sample from the final parameters.
  Validated with ``validate_train_step`` (10 steps in ORT vs 10 eager ``torch.optim.Adam`` steps).

``policy.onnx`` and ``loss.onnx`` come from templates in the graph cache when the configuration
ended a run before (:func:`export_final`, ``rlexport.export.bake``): the same artifact as a
fresh ``export_onnx``, the final values baked in, golden sample from the eager module, verified.
Each has ``X.json`` and ``X.golden/``. ``RUN/validation.json`` holds ``rlexport.parity.validate``
of every artifact against its golden sample, and ``passed``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rlexport.artifact.cache import GraphCache
from rlexport.artifact.paths import copy_artifact
from rlexport.export import export_onnx
from rlexport.export.bake import bake_onnx, export_onnx_template
from rlexport.export.plan import ExportError
from rlexport.validate import validate, validate_train_step

from .agent import DeterministicPolicy
from .engines import export_train_step_graph
from .graph_cache import export_cached

log = logging.getLogger("rlexport.train")


def deploy_policy(trainer) -> DeterministicPolicy:
    spec, cfg = trainer.spec, trainer.cfg
    mean = std = None
    if cfg.normalize_obs:
        rms = trainer.obs_norm.rms
        mean, std = rms.mean.astype(np.float32), np.sqrt(rms.var + trainer.obs_norm.eps).astype(np.float32)
    return DeterministicPolicy(trainer.engine.actor, spec.kind, mean, std, trainer.obs_norm.clip,
                               spec.low, spec.high).eval()


def export_run_artifacts(trainer, run_dir: Path) -> tuple[dict[str, str], bool]:
    """Export policy, loss and train step; validate; write ``validation.json``."""

    cfg = trainer.cfg
    out = Path(run_dir) / "artifacts"
    out.mkdir(parents=True, exist_ok=True)
    eng = trainer.engine
    if hasattr(eng, "sync_to_torch"):
        eng.sync_to_torch()
    paths: dict[str, str] = {}
    timings: dict[str, float] = {}

    policy = deploy_policy(trainer)
    obs = torch.from_numpy(_raw_obs_example(trainer))
    t = time.perf_counter()
    lifted = [b for b in ("obs_mean", "obs_std") if hasattr(policy, b)]  # this run's normalisation statistics
    paths["policy"] = str(export_final(trainer.cache, "policy", policy, {"observation": obs}, out / "policy.onnx", lifted))
    timings["policy"] = time.perf_counter() - t

    flat = trainer.flat_batch()
    n = min(cfg.minibatch_size, 64)
    example = {k: torch.from_numpy(np.ascontiguousarray(flat[k][:n])) for k in eng.input_names}
    t = time.perf_counter()
    # Dynamic batch, norm_adv or not: the losses apply TorchRL's rule (no standardisation of a
    # single element) in-graph, so batch 1 gives eager's numbers too.
    paths["loss"] = str(export_final(trainer.cache, "loss", eng.loss, example, out / "loss.onnx"))
    timings["loss"] = time.perf_counter() - t
    t = time.perf_counter()
    dest = out / "train_step.onnx"
    runtime_graph = getattr(eng, "train_step_path", None)
    if runtime_graph is not None:  # the ONNX engine's graph, exported (and verified) once per run
        copy_artifact(Path(runtime_graph), dest)
    else:
        export_train_step_graph(eng.loss, {k: flat[k][:n] for k in eng.input_names}, dest, cfg)
    paths["train_step"] = str(dest)
    timings["train_step"] = time.perf_counter() - t

    reports: dict[str, Any] = {}
    validate_seconds: dict[str, float] = {}
    passed = True
    for name, p in paths.items():
        t = time.perf_counter()
        try:
            if name == "train_step":  # K steps in ORT vs K eager torch.optim steps
                rep = validate_train_step(p, k=10, loss=eng.loss, batch_sizes=[n, max(2, n // 2)])
            else:  # the artifact against its golden sample on every available backend
                rep = validate(p)
            reports[name] = rep.to_dict()
            passed &= bool(rep.passed)
        except Exception as err:  # a validation that cannot run is a failure, reported
            reports[name] = {"passed": False, "error": f"{type(err).__name__}: {err}"}
            passed = False
        validate_seconds[name] = time.perf_counter() - t
    doc = {"passed": passed, "artifacts": paths, "export_seconds": timings,
           "validate_seconds": validate_seconds, "reports": reports}
    tmp = Path(run_dir) / "validation.json.tmp"
    tmp.write_text(json.dumps(doc, indent=2, default=str))
    os.replace(tmp, Path(run_dir) / "validation.json")
    return paths, passed


def export_final(cache: GraphCache | None, kind: str, module: nn.Module, example: Mapping[str, torch.Tensor],
                 dest: Path, lifted: Sequence[str] = ()) -> Path:
    """``export_onnx(module, example, dest)``'s artifact, from a template when ``cache`` is given.

    The template (``rlexport.export.bake``: the parameters and the buffers ``lifted`` as graph
    inputs) comes from ``cache`` when this configuration ended a run before, else is exported
    and stored; ``bake_onnx`` then writes the artifact with the module's final values baked in,
    its golden sample from the eager module and verified in ONNX Runtime, as ``export_onnx``
    would. ``cache=None`` (``--no-cache``): ``export_onnx``. A template that does not verify
    (one warning line): ``export_onnx``."""
    if cache is None:
        return export_onnx(module, example, dest)
    with tempfile.TemporaryDirectory(prefix="rlexport-template-") as tmp:
        template = Path(tmp) / f"{kind}_template.onnx"
        export_cached(cache, f"{kind}_template", module, example, template,
                      lambda path: export_onnx_template(module, example, path, buffers=lifted),
                      {"dynamic": True, "lifted_buffers": list(lifted)}, lifted)
        try:
            return bake_onnx(template, module, example, dest, buffers=lifted)
        except ExportError as err:
            log.warning("warning: the cached %s template did not give a verified %s (%s); exporting it afresh",
                        kind, dest.name, str(err).splitlines()[0][:300])
    return export_onnx(module, example, dest)


def _raw_obs_example(trainer) -> np.ndarray:
    """A handful of real raw observations (from a fresh env) for the policy's golden sample."""

    env = gym.make(trainer.cfg.env_id)
    obs = []
    o, _ = env.reset(seed=trainer.cfg.seed + 777)
    env.action_space.seed(trainer.cfg.seed)
    for _ in range(8):
        obs.append(np.asarray(o, np.float32))
        o, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            o, _ = env.reset()
    env.close()
    return np.stack(obs)
