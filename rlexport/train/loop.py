"""``train(cfg)``: collect, estimate, update, checkpoint, log; resume; export at the end.

Run folder (``--out``, default ``runs/<env>-<algo>-<seed>-<timestamp>``)::

    config.json               the full TrainConfig
    checkpoints/latest.safetensors   everything needed to resume (see checkpoint.py)
    metrics.csv               one row per update (losses, lr, steps/s, mean return of last 20)
    episodes.csv              one row per finished episode
    tb/                       TensorBoard events (only when tensorboard is installed)
    learning_curve.png        episodic returns + running mean
    graphs/                   the ONNX engine's runtime graphs (act, gae, train_step)
    artifacts/                final exported policy / loss / train step + golden samples
    validation.json           the parity report of the final artifacts
    summary.json              final numbers

The loop is deterministic given the seed (one torch thread): all sampling noise and minibatch
permutations come from one numpy generator whose state is checkpointed, so a run resumed from
its checkpoint after a kill continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlexport.artifact.cache import GraphCache

from .agent import AgentSpec, build_agent
from .checkpoint import remove_stale_temp_files, save_checkpoint
from .artifacts import export_run_artifacts
from .config import VECTOR_ENVS, TrainConfig
from .engines import OnnxEngine, TorchEngine
from .envs import (EnvError, ObsNormalizer, RewardScaler, describe_spaces, make_vec_env, resolve_vector_env, restore_vec,
                   snapshot_vec)
from .lock import LOCK_NAME, RunFolderBusy, RunFolderLock
from .metrics import MetricsLogger, plot_learning_curve
from .run_folder import CHECKPOINT, RunFolderError, read_run

CHECKPOINT_SECONDS = 30.0  # --checkpoint-every 0: a checkpoint after the first update this long after the last


class TrainError(ValueError):
    """Bad user input for training (env id, spaces, output folder, checkpoint): one line, exit 2."""


class TrainInterrupted(KeyboardInterrupt):
    """Ctrl-C / SIGTERM: the last checkpoint is intact; ``--resume`` continues the run.

    ``global_step`` is the step of the last checkpoint (where ``--resume`` continues);
    ``resumable`` is false when the run was stopped during start-up, before its first checkpoint
    (its folder is then emptied, so that the same command can simply be run again)."""

    def __init__(self, run_dir: Path, global_step: int, resumable: bool = True, during: str = ""):
        where = f" during {during}" if during else ""
        if resumable:
            msg = f"interrupted{where}; the checkpoint at step {global_step} is intact; resume with: rlexport train --resume {run_dir}"
        else:
            msg = f"interrupted{where}, before the first checkpoint: nothing to resume, {run_dir} was emptied; run the same command again"
        super().__init__(msg)
        self.run_dir, self.global_step, self.resumable = run_dir, global_step, resumable


class _Interrupts:
    """SIGINT and SIGTERM while ``train`` runs (main thread only).

    While ``deferred`` (the update loop), the first signal only sets ``requested``: the loop ends
    the current update, checkpoints and raises ``TrainInterrupted``. A second signal, or one
    outside the loop (start-up exports, the final export), raises ``KeyboardInterrupt`` at once.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = False
        self.deferred = False
        self._old: dict[int, Any] = {}

    def _handler(self, signum, frame):
        if self.deferred and not self.requested:
            self.requested = True
            return
        raise KeyboardInterrupt

    def __enter__(self) -> "_Interrupts":
        for sig in self.SIGNALS:
            try:
                self._old[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not the main thread: leave the process's handlers alone
                break
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


@dataclass
class TrainResult:
    run_dir: Path
    global_step: int
    mean_return: float | None
    steps_per_s: float
    episodes: int
    artifacts: dict[str, str] = field(default_factory=dict)
    validation_passed: bool | None = None


def default_run_dir(cfg: TrainConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.env_id}-{cfg.algo}-{cfg.seed}-{stamp}"


def _prepare_new_run_dir(path: Path) -> None:
    """Create ``path`` (must be new or empty) and prove it is writable, or ``TrainError``."""
    if path.exists():
        if not path.is_dir():
            raise TrainError(f"output folder {path} exists and is not a folder")
        if any(p.name != LOCK_NAME for p in path.iterdir()):
            raise TrainError(f"output folder {path} already exists and is not empty; use --resume {path} to continue it")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-probe"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise TrainError(f"output folder {path} is not writable: {err.strerror or err}") from err


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


class Trainer:
    """One run: built from a fresh config or from a run folder's checkpoint."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, resume_state: tuple[dict, dict] | None = None,
                 cache: GraphCache | None = None):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.cache = cache  # where the ONNX engine's start-up graphs come from when they were exported before
        torch.set_num_threads(cfg.threads)
        obs_space, act_space = describe_spaces(cfg.env_id)
        self.spec = AgentSpec(int(obs_space.shape[0]), act_space, cfg.box_distribution)
        self.actor, self.critic = build_agent(self.spec, cfg.hidden, cfg.seed)
        E, T, D = cfg.num_envs, cfg.num_steps, self.spec.obs_dim
        act_shape = (E, T) if self.spec.discrete else (E, T, self.spec.act_dim)
        self.buf = {
            "observation": np.zeros((E, T, D), np.float32),
            "next_observation": np.zeros((E, T, D), np.float32),
            "action": np.zeros(act_shape, np.int64 if self.spec.discrete else np.float32),
            "sample_log_prob": np.zeros((E, T), np.float32),
            "next_reward": np.zeros((E, T, 1), np.float32),
            "next_done": np.zeros((E, T, 1), bool),
            "next_terminated": np.zeros((E, T, 1), bool),
        }
        self.engine = self._make_engine()
        self.obs_norm = ObsNormalizer(D, cfg.normalize_obs)
        self.rew_scale = RewardScaler(E, cfg.gamma, cfg.normalize_reward)
        self.rng = np.random.default_rng(cfg.seed)
        self.vec = make_vec_env(cfg.env_id, E, cfg.vector_env)
        raw, _ = self.vec.reset(seed=cfg.seed)
        self.obs_norm.update(raw)
        self.obs = self.obs_norm(raw)
        self.ep_ret = np.zeros(E, np.float64)
        self.ep_len = np.zeros(E, np.int64)
        self.global_step = 0
        self.update_idx = 0
        self.recent: collections.deque[float] = collections.deque(maxlen=20)
        self.recent_len: collections.deque[int] = collections.deque(maxlen=20)
        self.episodes = 0
        self.exact_env_state = True
        self.checkpointed_step = 0
        if resume_state is not None:
            self._restore(*resume_state)

    # -- construction ------------------------------------------------------------------------
    def _make_engine(self):

        if self.cfg.engine == "torch":
            return TorchEngine(self.cfg, self.spec, self.actor, self.critic)
        mb = self._example_minibatch()
        return OnnxEngine(self.cfg, self.spec, self.actor, self.critic, self.run_dir / "graphs",
                          example_rollout=self._example_rollout(), example_minibatch=mb, cache=self.cache)

    def _example_rollout(self) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(123)
        ex = {k: v.copy() for k, v in self.buf.items()}
        ex["observation"] = rng.standard_normal(ex["observation"].shape).astype(np.float32)
        ex["next_observation"] = rng.standard_normal(ex["next_observation"].shape).astype(np.float32)
        ex["next_reward"] = rng.standard_normal(ex["next_reward"].shape).astype(np.float32)
        ex["next_done"] = rng.random(ex["next_done"].shape) < 0.1
        ex["next_terminated"] = ex["next_done"] & (rng.random(ex["next_done"].shape) < 0.5)
        return ex

    def _example_minibatch(self) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(321)
        n = self.cfg.minibatch_size
        ex: dict[str, np.ndarray] = {"observation": rng.standard_normal((n, self.spec.obs_dim)).astype(np.float32)}
        ex.update(self.spec.example_actions(rng, n))
        lp = (-np.abs(rng.standard_normal(n)) - 0.5).astype(np.float32)
        ex.update(sample_log_prob=lp, action_log_prob=lp, log_prob=lp)
        ex["advantage"] = rng.standard_normal((n, 1)).astype(np.float32)
        ex["value_target"] = rng.standard_normal((n, 1)).astype(np.float32)
        ex["state_value"] = rng.standard_normal((n, 1)).astype(np.float32)
        return ex

    # -- checkpoint --------------------------------------------------------------------------
    def checkpoint(self) -> None:
        tensors: dict[str, Any] = dict(self.engine.state())
        tensors["rng.torch"] = torch.random.get_rng_state()
        tensors.update(self.obs_norm.rms.state("obs_rms"))
        tensors.update(self.rew_scale.rms.state("rew_rms"))
        tensors["rew_returns"] = self.rew_scale.returns
        tensors["obs"] = self.obs
        tensors["ep_ret"] = self.ep_ret
        tensors["ep_len"] = self.ep_len
        metas, arrays, exact = snapshot_vec(self.vec)
        tensors.update(arrays)
        meta = {
            "global_step": self.global_step, "update": self.update_idx, "episodes": self.episodes,
            "rng_numpy": self.rng.bit_generator.state, "envs": metas, "exact_env_state": exact,
            "env_id": self.cfg.env_id, "algo": self.cfg.algo, "engine": self.cfg.engine,
            "recent": list(self.recent), "recent_len": list(self.recent_len),
            "vector_env": make_vec_env_kind(self.cfg),
        }
        save_checkpoint(self.run_dir / CHECKPOINT, tensors, meta)
        self.checkpointed_step = self.global_step

    def _restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        np_t = {k: v.numpy() for k, v in tensors.items()}
        self.engine.load_state(tensors)
        torch.random.set_rng_state(tensors["rng.torch"])
        self.obs_norm.rms.load("obs_rms", np_t)
        self.rew_scale.rms.load("rew_rms", np_t)
        self.rew_scale.returns = np_t["rew_returns"].astype(np.float64).copy()
        self.ep_ret = np_t["ep_ret"].astype(np.float64).copy()
        self.ep_len = np_t["ep_len"].astype(np.int64).copy()
        self.rng.bit_generator.state = meta["rng_numpy"]
        self.global_step, self.update_idx, self.episodes = meta["global_step"], meta["update"], meta["episodes"]
        self.checkpointed_step = self.global_step
        self.recent.extend(meta.get("recent", []))
        self.recent_len.extend(meta.get("recent_len", []))
        self.obs = np_t["obs"].astype(np.float32).copy()
        self.exact_env_state = bool(meta.get("exact_env_state", False))
        restore_vec(self.vec, meta["envs"], {k: v for k, v in np_t.items() if k.startswith("env.")})
        if not self.exact_env_state:
            # simulator state could not be captured: restart the episodes in progress
            raw, _ = self.vec.reset(seed=int(self.cfg.seed * 1_000_003 + self.global_step) % (2**31))
            self.obs = self.obs_norm(raw)
            self.ep_ret[:] = 0
            self.ep_len[:] = 0

    # -- one iteration -----------------------------------------------------------------------
    def collect(self, logger: MetricsLogger | None) -> None:
        """One rollout of ``num_steps`` steps of every env into ``self.buf``. The hot loop: one
        act call and one env step per step, writes into the preallocated buffers, no dicts."""
        cfg, spec, buf = self.cfg, self.spec, self.buf
        E = cfg.num_envs
        noise = spec.draw_noise(self.rng, E, steps=cfg.num_steps)
        obs_buf, next_obs_buf = buf["observation"], buf["next_observation"]
        action_buf, logp_buf = buf["action"], buf["sample_log_prob"]
        reward_buf, done_buf, term_buf = buf["next_reward"][..., 0], buf["next_done"][..., 0], buf["next_terminated"][..., 0]
        act, step, env_action = self.engine.act, self.vec.step, spec.env_action
        obs_norm, rew_scale = self.obs_norm, self.rew_scale
        ep_ret, ep_len = self.ep_ret, self.ep_len
        for t in range(cfg.num_steps):
            obs_buf[:, t] = self.obs
            action, logp = act(self.obs, noise[t])
            raw, reward, term, trunc, info = step(env_action(action))
            done = term | trunc
            action_buf[:, t] = action
            logp_buf[:, t] = logp.reshape(E)
            reward_buf[:, t] = rew_scale(reward, done)
            done_buf[:, t] = done
            term_buf[:, t] = term
            self.global_step += E
            ep_ret += reward
            ep_len += 1
            final = raw
            if done.any():
                if "final_obs" in info:
                    final = raw.copy()
                    for i in np.nonzero(info.get("_final_obs", done))[0]:
                        final[i] = info["final_obs"][i]
                for i in np.nonzero(done)[0]:
                    self.episodes += 1
                    self.recent.append(float(ep_ret[i]))
                    self.recent_len.append(int(ep_len[i]))
                    if logger is not None:
                        logger.episode(self.global_step, int(i), float(ep_ret[i]), int(ep_len[i]))
                    ep_ret[i] = 0.0
                    ep_len[i] = 0
            obs_norm.update(raw)
            next_obs_buf[:, t] = obs_norm(final)
            self.obs = obs_norm(raw)

    def learning_rate(self) -> float:
        cfg = self.cfg
        if not cfg.anneal_lr:
            return cfg.learning_rate
        frac = 1.0 - self.update_idx / cfg.num_updates  # update_idx = iterations done so far
        return max(frac, 0.0) * cfg.learning_rate

    def flat_batch(self) -> dict[str, np.ndarray]:
        """The rollout in the buffer as loss keywords ``[N, ...]``, with GAE from the engine."""
        cfg = self.cfg
        adv, vt = self.engine.gae(self.buf)
        N = cfg.batch_size
        action = self.buf["action"].reshape((N,) if self.spec.discrete else (N, -1))
        flat = {
            "observation": self.buf["observation"].reshape(N, -1),
            **(self.spec.split_actions(action) if self.spec.composite else {"action": action}),
            "sample_log_prob": self.buf["sample_log_prob"].reshape(N),
            "advantage": adv.reshape(N, 1).astype(np.float32),
            "value_target": vt.reshape(N, 1).astype(np.float32),
        }
        # GAE: value_target = advantage + V(s), so the rollout-time value is their difference
        flat["state_value"] = (flat["value_target"] - flat["advantage"]).astype(np.float32)
        return flat

    def learn(self) -> dict[str, float]:
        cfg = self.cfg
        flat = self.flat_batch()
        N = cfg.batch_size
        lr = self.learning_rate()
        sums: dict[str, float] = collections.defaultdict(float)
        count = 0
        mbs = cfg.minibatch_size
        for _ in range(cfg.update_epochs):
            perm = self.rng.permutation(N)
            for start in range(0, N, mbs):
                idx = perm[start:start + mbs]
                if len(idx) < mbs and start > 0:  # keep one graph shape: fold a remainder away
                    continue
                out = self.engine.update({k: v[idx] for k, v in flat.items()}, lr)
                for k, v in out.items():
                    sums[k] += v
                count += 1
        res = {k: v / max(count, 1) for k, v in sums.items()}
        y, v = flat["value_target"].reshape(-1), flat["state_value"].reshape(-1)
        var_y = float(np.var(y))
        res["explained_variance"] = float("nan") if var_y == 0 else 1.0 - float(np.var(y - v)) / var_y
        res["learning_rate"] = lr
        self.update_idx += 1
        return res

    def close(self) -> None:
        self.vec.close()


# -- public entry points ------------------------------------------------------------------


def _read_resume(run: Path) -> tuple[TrainConfig, dict, dict]:
    """``(config, tensors, meta)`` of a run folder (``run_folder.read_run``), or ``TrainError`` with one line.

    The checkpoint is ``checkpoints/latest.safetensors``, or the previous one when the latest is
    missing or corrupt; ``meta["fallback"]`` then holds the one-line notice saying so."""
    run = Path(run)
    if not run.is_dir():
        raise TrainError(f"--resume: run folder {run} does not exist")
    try:
        folder = read_run(run)
    except RunFolderError as err:
        raise TrainError(f"--resume: {err}") from None
    cfg, tensors, meta = folder.config, folder.tensors, folder.meta
    if meta.get("env_id") != cfg.env_id or meta.get("algo") != cfg.algo or meta.get("engine") != cfg.engine:
        raise TrainError(f"--resume: checkpoint in {run} does not belong to its config.json (env/algo/engine differ)")
    recorded = meta.get("vector_env", "sync")
    if cfg.vector_env == "auto" and recorded in VECTOR_ENVS and recorded != "auto":
        cfg.vector_env = recorded  # a run keeps the vector env it started with, whatever auto picks today
    _check_resume_fits(cfg, tensors, meta, run)
    return cfg, tensors, meta


def _check_resume_fits(cfg: TrainConfig, tensors: dict[str, torch.Tensor], meta: dict[str, Any], run: Path) -> None:
    """Refuse (one line, before any export) a config.json edited so that the checkpoint no longer
    fits it: network sizes, number of envs, observation size, vector env kind."""
    try:
        obs_space, act_space = describe_spaces(cfg.env_id)
    except EnvError as err:
        raise TrainError(f"--resume: {err}") from None
    spec = AgentSpec(int(obs_space.shape[0]), act_space, cfg.box_distribution)
    actor, critic = build_agent(spec, cfg.hidden, cfg.seed)
    holder = torch.nn.Module()
    holder.actor_network, holder.critic_network = actor, critic  # the loss's parameter names
    expected = {f"param.{n}": tuple(p.shape) for n, p in holder.named_parameters()}
    expected.update(obs=(cfg.num_envs, spec.obs_dim), ep_ret=(cfg.num_envs,), ep_len=(cfg.num_envs,))
    for key, shape in expected.items():
        got = tuple(tensors[key].shape) if key in tensors else None
        if got != shape:
            found = "missing" if got is None else f"shape {list(got)}"
            raise TrainError(f"--resume: checkpoint in {run} does not fit {run / 'config.json'}: tensor {key!r} is "
                             f"{found}, the config needs {list(shape)} (was config.json edited?)")
    if meta.get("vector_env", "sync") != make_vec_env_kind(cfg):
        raise TrainError(f"--resume: checkpoint in {run} holds {meta.get('vector_env', 'sync')} vector-env states; "
                         f"config.json asks for {make_vec_env_kind(cfg)} (was config.json edited?)")


def make_vec_env_kind(cfg: TrainConfig) -> str:
    """``"sync"``, ``"native"`` or ``"fast"``: the vector env ``cfg`` trains with."""
    return resolve_vector_env(cfg.env_id, cfg.vector_env, cfg.num_envs)


def _check_state_matches(trainer_state: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor], run: Path) -> None:
    for k, v in trainer_state.items():
        if k not in tensors or tuple(tensors[k].shape) != tuple(v.shape):
            raise TrainError(f"--resume: checkpoint in {run} does not match the model (tensor {k!r} missing or reshaped)")


def _empty_folder(path: Path) -> None:
    for child in Path(path).iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        elif child.name != LOCK_NAME:
            child.unlink(missing_ok=True)


def train(
    cfg: TrainConfig | None = None,
    *,
    resume: str | Path | None = None,
    total_steps: int | None = None,
    export: bool | None = None,
    on_update: Callable[[Trainer, dict[str, Any]], None] | None = None,
    on_start: Callable[[TrainConfig, int], None] | None = None,
    stop_after_updates: int | None = None,
    cache: bool | GraphCache = True,
) -> TrainResult:
    """Run (or continue) training; see the module docstring for the run folder.

    The run folder is locked for the whole call (``rlexport.train.lock``): a second process on
    the same folder gets ``TrainError`` naming the holder's PID. ``export`` overrides the
    config's ``export_artifacts`` (``--resume RUN --no-export``). ``on_start(cfg, start_step)`` is
    called once the folder is locked and the config (and checkpoint) read, before start-up;
    ``on_update(trainer, row)`` after every update (the CLI's title line and progress bar). Checkpoints: every ``checkpoint_every``
    updates, or (0) after the first update ``CHECKPOINT_SECONDS`` after the previous one; always
    after the last update and when SIGINT/SIGTERM asks the loop to stop (``TrainInterrupted``).
    ``stop_after_updates`` stops this call after that many updates as a signal would (tests).
    ``cache``: the ONNX engine's start-up graphs come from the graph cache
    (``rlexport.artifact.cache``, ``$RLEXPORT_CACHE_DIR``) when this configuration was exported
    before; ``False`` (``--no-cache``) exports them; a ``GraphCache`` uses that one.
    """
    if resume is not None:
        run_dir = Path(resume)
        if not run_dir.is_dir():
            raise TrainError(f"--resume: run folder {run_dir} does not exist")
    else:
        if cfg is None:
            raise TrainError("train: give a config or resume=RUN")
        cfg.validate()
        try:
            describe_spaces(cfg.env_id)
            make_vec_env_kind(cfg)
        except EnvError as err:
            raise TrainError(str(err)) from None
        run_dir = Path(cfg.out) if cfg.out else default_run_dir(cfg)
        _prepare_new_run_dir(run_dir)
    lock = RunFolderLock(run_dir)
    try:
        lock.acquire()
    except RunFolderBusy as err:
        raise TrainError(str(err)) from None
    try:
        remove_stale_temp_files(run_dir)  # ours are gone when we exit; these are from killed runs
        graph_cache = cache if isinstance(cache, GraphCache) else (GraphCache() if cache else None)
        return _train_locked(cfg, run_dir, resume is not None, total_steps, export, on_update, on_start,
                             stop_after_updates, graph_cache)
    finally:
        lock.release()


def _train_locked(cfg, run_dir, resuming, total_steps, export, on_update, on_start, stop_after_updates,
                  graph_cache) -> TrainResult:
    resume_state = None
    if resuming:
        cfg, tensors, meta = _read_resume(run_dir)
        if total_steps is not None:
            cfg.total_steps = int(total_steps)
            try:
                cfg.validate()
            except ValueError as err:
                raise TrainError(str(err)) from None
        resume_state = (tensors, meta)
    else:
        cfg.out = str(run_dir)
        _write_json(run_dir / "config.json", json.loads(cfg.to_json()))
    if export is not None:
        cfg.export_artifacts = bool(export)
    if on_start is not None:
        on_start(cfg, int(resume_state[1]["global_step"]) if resume_state is not None else 0)

    with _Interrupts() as interrupts:
        try:
            trainer = Trainer(cfg, run_dir, resume_state, cache=graph_cache)
            if resume_state is not None:
                _check_state_matches(trainer.engine.state(), resume_state[0], run_dir)
            else:
                trainer.checkpoint()  # step 0: a kill during the first rollout still resumes
        except EnvError as err:
            raise TrainError(str(err)) from None
        except KeyboardInterrupt:
            if resume_state is not None:
                raise TrainInterrupted(run_dir, int(resume_state[1]["global_step"]), during="start-up") from None
            _empty_folder(run_dir)
            raise TrainInterrupted(run_dir, 0, resumable=False, during="start-up") from None
        return _run_loop(cfg, trainer, run_dir, resume_state is not None, interrupts, on_update, stop_after_updates)


def _run_loop(cfg, trainer, run_dir, resumed, interrupts, on_update, stop_after_updates) -> TrainResult:
    logger = MetricsLogger(run_dir, resume_step=trainer.global_step if resumed else None)
    start_step, t0 = trainer.global_step, time.perf_counter()
    last_checkpoint = t0
    done_here = 0
    interrupts.deferred = True
    try:
        while trainer.update_idx < cfg.num_updates:
            trainer.collect(logger)
            res = trainer.learn()
            now = time.perf_counter()
            elapsed = now - t0
            row = {
                "update": trainer.update_idx, "global_step": trainer.global_step, "time_s": elapsed,
                "steps_per_s": (trainer.global_step - start_step) / max(elapsed, 1e-9),
                "episodes": trainer.episodes,
                "mean_return_20": float(np.mean(trainer.recent)) if trainer.recent else float("nan"),
                "mean_length_20": float(np.mean(trainer.recent_len)) if trainer.recent_len else float("nan"),
                **res,
            }
            logger.update(row)
            logger.flush()
            done_here += 1
            stop = interrupts.requested or (stop_after_updates is not None and done_here >= stop_after_updates)
            if cfg.checkpoint_every > 0:
                due = trainer.update_idx % cfg.checkpoint_every == 0
            else:
                due = now - last_checkpoint >= CHECKPOINT_SECONDS
            if due or stop or trainer.update_idx >= cfg.num_updates:
                # metrics first, then the checkpoint: rows past a checkpoint are cut back on resume
                trainer.checkpoint()
                last_checkpoint = time.perf_counter()
            if on_update is not None:
                on_update(trainer, row)
            if stop and trainer.update_idx < cfg.num_updates:
                raise TrainInterrupted(run_dir, trainer.checkpointed_step)
        interrupts.deferred = False
        elapsed = time.perf_counter() - t0
        logger.close()
        trainer.close()
        plot_learning_curve(run_dir, title=f"{cfg.env_id} {cfg.algo.upper()} ({cfg.engine}) seed {cfg.seed}")
        result = TrainResult(
            run_dir=run_dir, global_step=trainer.global_step,
            mean_return=float(np.mean(trainer.recent)) if trainer.recent else None,
            steps_per_s=(trainer.global_step - start_step) / max(elapsed, 1e-9), episodes=trainer.episodes,
        )
        if cfg.export_artifacts:

            result.artifacts, result.validation_passed = export_run_artifacts(trainer, run_dir)
    except KeyboardInterrupt as err:
        interrupts.deferred = False
        logger.close()
        trainer.close()
        if isinstance(err, TrainInterrupted):
            raise
        during = "" if trainer.update_idx < cfg.num_updates else "the final export"
        raise TrainInterrupted(run_dir, trainer.checkpointed_step, during=during) from None
    _write_json(run_dir / "summary.json", {
        "env_id": cfg.env_id, "algo": cfg.algo, "engine": cfg.engine, "seed": cfg.seed,
        "global_step": result.global_step, "episodes": result.episodes,
        "mean_return_last_20": result.mean_return, "steps_per_s_this_session": result.steps_per_s,
        "artifacts": result.artifacts, "validation_passed": result.validation_passed,
        "exact_env_state": trainer.exact_env_state,
    })
    return result
