"""``evaluate(run, episodes, backend)``: run a trained policy for N episodes, greedy actions.

``backend="onnx"`` runs ``RUN/artifacts/policy.onnx`` in ONNX Runtime (raw observations in, the
normalisation is in the graph); ``backend="torch"`` rebuilds the actor from ``config.json`` and
the parameters of ``checkpoints/latest.safetensors``. Episodes are seeded ``seed + 10_000 + i``
(not the training seeds).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from rlexport.runtime.onnx import make_session

from .agent import AgentSpec, DeterministicPolicy, build_agent
from .envs import ObsNormalizer, describe_spaces
from .loop import TrainError
from .run_folder import RunFolderError, read_run, read_run_config

BACKENDS = ("torch", "onnx")


@dataclass
class EvalResult:
    run_dir: Path
    backend: str
    episodes: int
    returns: list[float]
    lengths: list[int]

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std_return(self) -> float:
        return float(np.std(self.returns))


def _torch_policy(run: Path, cfg):

    try:
        tensors = read_run(run).tensors  # the previous checkpoint if the latest is damaged
    except RunFolderError as err:
        raise TrainError(str(err)) from None
    obs_space, act_space = describe_spaces(cfg.env_id)
    spec = AgentSpec(int(obs_space.shape[0]), act_space, cfg.box_distribution)
    actor, critic = build_agent(spec, cfg.hidden, cfg.seed)
    holder = torch.nn.Module()
    holder.actor_network, holder.critic_network = actor, critic  # the loss's parameter names
    with torch.no_grad():
        for n, p in holder.named_parameters():
            if f"param.{n}" not in tensors:
                raise TrainError(f"checkpoint in {run} has no parameter {n!r}")
            p.copy_(tensors[f"param.{n}"])
    mean = std = None
    norm = ObsNormalizer(spec.obs_dim, cfg.normalize_obs)
    if cfg.normalize_obs:
        norm.rms.load("obs_rms", {k: v.numpy() for k, v in tensors.items()})
        mean, std = norm.rms.mean.astype(np.float32), np.sqrt(norm.rms.var + norm.eps).astype(np.float32)
    policy = DeterministicPolicy(actor, spec.kind, mean, std, norm.clip, spec.low, spec.high).eval()

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return policy(torch.from_numpy(obs[None].astype(np.float32)))[0].numpy()

    return act


def _onnx_policy(run: Path):


    path = run / "artifacts" / "policy.onnx"
    if not path.is_file():
        raise TrainError(f"{path} does not exist (the run was not exported; use --backend torch)")
    sess = make_session(path, "cpu", threads=1)
    name = sess.get_inputs()[0].name

    def act(obs: np.ndarray) -> np.ndarray:
        return sess.run(None, {name: obs[None].astype(np.float32)})[0][0]

    return act


def evaluate(run: str | Path, episodes: int = 10, backend: str = "onnx", seed: int | None = None) -> EvalResult:


    run = Path(run)
    if backend not in BACKENDS:
        raise TrainError(f"--backend {backend!r} is not supported; choose one of {list(BACKENDS)}")
    if episodes < 1:
        raise TrainError(f"--episodes must be >= 1, got {episodes}")
    try:
        cfg = read_run_config(run)
    except RunFolderError as err:
        raise TrainError(str(err)) from None
    act = _onnx_policy(run) if backend == "onnx" else _torch_policy(run, cfg)
    obs_space, act_space = describe_spaces(cfg.env_id)
    spec = AgentSpec(int(obs_space.shape[0]), act_space, cfg.box_distribution)
    env = gym.make(cfg.env_id)
    base = (cfg.seed if seed is None else seed) + 10_000
    returns, lengths = [], []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=base + i)
            total, n, done = 0.0, 0, False
            while not done:
                a = spec.single_env_action(act(np.asarray(obs, np.float32)))
                obs, r, term, trunc, _ = env.step(a)
                total += float(r)
                n += 1
                done = term or trunc
            returns.append(total)
            lengths.append(n)
    finally:
        env.close()
    return EvalResult(run, backend, episodes, returns, lengths)
