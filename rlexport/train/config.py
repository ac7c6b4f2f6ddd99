"""Training configuration: one dataclass, per-algorithm defaults, JSON round trip.

PPO defaults are CleanRL's ``ppo.py`` (128 steps x 4 envs, 4 epochs x 4 minibatches, clip 0.2,
GAE 0.99/0.95, Adam 2.5e-4 linearly annealed, eps 1e-5, max grad norm 0.5, per-minibatch
advantage normalisation, entropy 0.01, value coefficient 0.5 with CleanRL's value clipping).
A2C defaults are Stable-Baselines3's A2C (5 steps, lr 7e-4 constant, GAE lambda 1.0, entropy 0,
value coefficient 0.5 on the MSE, max grad norm 0.5, no advantage normalisation) with RL-Zoo's 8
envs; Adam (eps 1e-5) replaces SB3's RMSprop because the exported train step implements Adam.

``vf_coef`` has CleanRL's meaning: the critic loss is ``vf_coef * 0.5 * (v - target)^2``; it
maps to the rlexport/TorchRL loss as ``critic_coeff = 0.5 * vf_coef`` with
``loss_critic_type="l2"`` (TorchRL's l2 is the plain squared error). SB3's A2C ``vf_coef=0.5``
on the MSE is therefore ``vf_coef=1.0`` here.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

ALGOS = ("ppo", "a2c")
ENGINES = ("torch", "onnx")
BOX_DISTRIBUTIONS = ("tanh_normal", "normal")
VECTOR_ENVS = ("auto", "sync", "native", "fast")  # see rlexport.train.envs.make_vec_env


@dataclass
class TrainConfig:
    env_id: str = "CartPole-v1"
    algo: str = "ppo"
    engine: str = "torch"
    seed: int = 1
    total_steps: int = 500_000
    num_envs: int = 4
    num_steps: int = 128
    update_epochs: int = 4
    num_minibatches: int = 4
    learning_rate: float = 2.5e-4
    anneal_lr: bool = True
    adam_eps: float = 1e-5
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_coef: float = 0.2
    clip_vloss: bool = True
    norm_adv: bool = True
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    normalize_obs: bool = False
    normalize_reward: bool = False
    box_distribution: str = "normal"
    hidden: tuple[int, ...] = (64, 64)
    vector_env: str = "auto"  # the fastest exact vector env where one exists (envs.resolve_vector_env)
    checkpoint_every: int = 0  # updates between checkpoints; 0 = auto (>= 512 env steps apart)
    threads: int = 1
    export_artifacts: bool = True
    out: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    # -- derived ---------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return max(1, self.batch_size // self.num_minibatches)

    @property
    def num_updates(self) -> int:
        return max(1, self.total_steps // self.batch_size)

    @property
    def checkpoint_interval(self) -> int:
        if self.checkpoint_every > 0:
            return self.checkpoint_every
        return max(1, -(-512 // self.batch_size))

    @property
    def critic_coeff(self) -> float:
        return 0.5 * self.vf_coef

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return json.dumps(d, indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"config: unknown field(s) {unknown}")
        d = dict(d)
        d.setdefault("vector_env", "sync")  # runs written before the field existed used SyncVectorEnv
        if "hidden" in d:
            d["hidden"] = tuple(int(h) for h in d["hidden"])
        return cls(**d)

    def validate(self) -> None:
        if self.algo not in ALGOS:
            raise ValueError(f"--algo {self.algo!r} is not supported; choose one of {list(ALGOS)}")
        if self.engine not in ENGINES:
            raise ValueError(f"--engine {self.engine!r} is not supported; choose one of {list(ENGINES)}")
        if self.box_distribution not in BOX_DISTRIBUTIONS:
            raise ValueError(
                f"--box-distribution {self.box_distribution!r} is not supported; choose one of {list(BOX_DISTRIBUTIONS)}"
            )
        if self.vector_env not in VECTOR_ENVS:
            raise ValueError(f"--vector-env {self.vector_env!r} is not supported; choose one of {list(VECTOR_ENVS)}")
        for name in ("total_steps", "num_envs", "num_steps", "update_epochs", "num_minibatches", "threads"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.checkpoint_every < 0:
            raise ValueError(f"--checkpoint-every must be >= 0 (0 = auto), got {self.checkpoint_every}")
        if self.num_minibatches > self.batch_size:
            raise ValueError(
                f"--num-minibatches {self.num_minibatches} exceeds the batch size {self.batch_size} (num_envs x num_steps)"
            )
        for name in ("learning_rate", "adam_eps"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"--{name.replace('_', '-')} must be > 0, got {getattr(self, name)}")
        for name in ("gamma", "gae_lambda"):
            v = float(getattr(self, name))
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"--{name.replace('_', '-')} must be in [0, 1], got {v}")


# Per-algorithm defaults (only the fields that differ from the dataclass defaults, i.e. PPO).
ALGO_DEFAULTS: dict[str, dict[str, Any]] = {
    "ppo": {},
    "a2c": dict(
        num_envs=8,
        num_steps=5,
        update_epochs=1,
        num_minibatches=1,
        learning_rate=7e-4,
        anneal_lr=False,
        gae_lambda=1.0,
        clip_vloss=False,
        norm_adv=False,
        ent_coef=0.0,
        vf_coef=1.0,
    ),
}

# Per-environment overrides applied on top of the algorithm defaults when the user does not set
# the option (documented in rlexport/train/README.md): Pendulum needs a short horizon (gamma 0.9), longer
# rollouts, more epochs and observation + reward normalisation (RL-Zoo's PPO Pendulum settings
# without gSDE).
ENV_DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    ("ppo", "Pendulum-v1"): dict(
        num_envs=4,
        num_steps=512,
        update_epochs=10,
        num_minibatches=16,
        learning_rate=1e-3,
        gamma=0.9,
        gae_lambda=0.95,
        ent_coef=0.0,
        normalize_obs=True,
        normalize_reward=True,
    ),
}


def make_config(algo: str = "ppo", env_id: str = "CartPole-v1", **overrides: Any) -> TrainConfig:
    """The defaults for ``algo`` on ``env_id``, then every non-``None`` override."""
    if algo not in ALGOS:
        raise ValueError(f"--algo {algo!r} is not supported; choose one of {list(ALGOS)}")
    values: dict[str, Any] = {"algo": algo, "env_id": env_id}
    values.update(ALGO_DEFAULTS[algo])
    values.update(ENV_DEFAULTS.get((algo, env_id), {}))
    values.update({k: v for k, v in overrides.items() if v is not None})
    if "hidden" in values:
        values["hidden"] = tuple(int(h) for h in values["hidden"])
    cfg = TrainConfig(**values)
    cfg.validate()
    return cfg
