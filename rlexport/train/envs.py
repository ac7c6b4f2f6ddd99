"""Vectorised Gymnasium environments, running statistics and exact env snapshots.

Autoreset: ``SyncVectorEnv`` with ``AutoresetMode.SAME_STEP``. A step that ends an episode
returns the *reset* observation of the next episode and puts the real last observation in
``info["final_obs"]``; the collector stores that real observation as ``next_observation`` so a
truncated episode bootstraps from where it really stopped, and there is no pending reset step
to skip (NEXT_STEP mode would interleave a no-op transition after every episode end).

Native vector envs: where Gymnasium registers a numpy ``vector_entry_point`` that this module
knows how to drive with same-step autoreset (CartPole's ``CartPoleVectorEnv``), ``make_vec_env``
uses it with ``vector_env="native"``; ``"sync"`` forces ``SyncVectorEnv``.
Gymnasium's ``CartPoleVectorEnv`` itself autoresets on the *next* step (a no-op transition with
reward 0 after every episode end); ``SameStepCartPole`` resets the finished sub-environments
right after the step that ended them, drawing their start states from the vector env's own
generator exactly as its next step would, and reports the real last observation in
``info["final_obs"]`` (``info["_final_obs"]`` the mask): the semantics of ``SyncVectorEnv`` in
``SAME_STEP`` mode (tested against it), but not its episodes (one generator for all envs).

Fast CartPole: ``CartPoleVec`` (``vector_env="fast"``, and ``"auto"`` for CartPole below
``FAST_MAX_ENVS`` envs) is rlexport's own CartPole-v0/v1, step for step and bit for bit the
episodes of ``SyncVectorEnv`` over ``gym.make(id)`` with the same seed and actions, without
the per-env wrapper and array overhead that dominates at a few envs.

Snapshots: to resume a run with nothing lost, the checkpoint holds every sub-environment's
state where it can be read back exactly: the env's ``np_random`` generator state, ``TimeLimit``'s
step counter, and the simulator state of classic-control (``unwrapped.state``) and MuJoCo
(``qpos``/``qvel``) environments. An environment whose simulator state cannot be captured is
reset with a derived seed on resume (recorded as ``exact_env_state: false`` in the checkpoint).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import toy_envs  # noqa: F401  (registers the rlexport/* test environments with Gymnasium)
from .config import VECTOR_ENVS

try:  # gymnasium is a hard dependency, but keep the import error readable
    import gymnasium as gym
    from gymnasium.utils import seeding
except ImportError as err:  # pragma: no cover
    raise ImportError("rlexport.train needs gymnasium (pip install gymnasium)") from err


class EnvError(ValueError):
    """An environment id or space that training cannot use."""


def check_env_id(env_id: str) -> None:
    """Refuse an id that is not registered, with a one-line message."""
    if env_id not in gym.registry:
        close = [k for k in gym.registry if env_id.lower().split("-")[0] in k.lower()][:5]
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise EnvError(f"unknown Gymnasium environment id {env_id!r}{hint}")


def describe_spaces(env_id: str) -> tuple[gym.spaces.Space, gym.spaces.Space]:
    """``(observation_space, action_space)`` of one instance; refuses unsupported spaces."""
    check_env_id(env_id)
    try:
        env = gym.make(env_id)
    except Exception as err:  # missing optional dependency (box2d, mujoco, ...)
        raise EnvError(f"cannot create environment {env_id!r}: {type(err).__name__}: {err}") from err
    try:
        return check_spaces(env_id, env.observation_space, env.action_space)
    finally:
        env.close()


def check_spaces(env_id: str, obs_space: Any, act_space: Any) -> tuple[Any, Any]:
    if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
        raise EnvError(
            f"environment {env_id!r} has observation space {obs_space}; rlexport train supports flat Box observations"
        )
    if isinstance(act_space, gym.spaces.Discrete):
        if int(act_space.start) != 0:
            raise EnvError(f"environment {env_id!r}: Discrete action space with start={act_space.start} is not supported")
        return obs_space, act_space
    if isinstance(act_space, gym.spaces.Box) and len(act_space.shape) == 1:
        if not (np.all(np.isfinite(act_space.low)) and np.all(np.isfinite(act_space.high))):
            raise EnvError(f"environment {env_id!r}: Box action space {act_space} must be bounded")
        return obs_space, act_space
    if isinstance(act_space, gym.spaces.MultiDiscrete):
        if act_space.nvec.ndim != 1 or np.any(act_space.start != 0):
            raise EnvError(f"environment {env_id!r}: MultiDiscrete action space {act_space} must be 1-D with start 0")
        return obs_space, act_space
    if isinstance(act_space, (gym.spaces.Dict, gym.spaces.Tuple)):
        leaves = act_space.spaces.items() if isinstance(act_space, gym.spaces.Dict) else enumerate(act_space.spaces)
        for name, leaf in leaves:
            if isinstance(name, str) and not name.isidentifier():
                raise EnvError(f"environment {env_id!r}: Dict action key {name!r} must be a Python identifier "
                               "(it names the head's loss input action_<key>)")
            if not isinstance(leaf, (gym.spaces.Discrete, gym.spaces.Box)) or (
                    isinstance(leaf, gym.spaces.Box) and len(leaf.shape) != 1):
                raise EnvError(f"environment {env_id!r}: action head {name!r} is {leaf}; composite actions support "
                               "Discrete and flat Box heads (not nested)")
            try:
                check_spaces(env_id, obs_space, leaf)
            except EnvError as err:
                raise EnvError(f"{err} (action head {name!r})") from None
        if not len(act_space.spaces):
            raise EnvError(f"environment {env_id!r}: empty {type(act_space).__name__} action space")
        return obs_space, act_space
    raise EnvError(
        f"environment {env_id!r} has action space {act_space}; rlexport train supports Discrete, flat Box, "
        "MultiDiscrete, and Dict/Tuple of Discrete and flat Box actions"
    )


def _native_vector_entry(env_id: str) -> str | None:
    spec = gym.registry[env_id]
    entry = spec.vector_entry_point
    return entry if entry == SameStepCartPole.ENTRY_POINT else None


def _fast_supported(env_id: str) -> bool:
    """Whether ``CartPoleVec`` reproduces ``env_id`` exactly: Gymnasium's ``CartPoleEnv`` with its
    default keyword arguments and a ``TimeLimit`` (CartPole-v0 and -v1)."""
    spec = gym.registry[env_id]
    return spec.entry_point == CartPoleVec.ENTRY_POINT and not spec.kwargs and spec.max_episode_steps is not None


# ``auto`` picks the native env from this many envs on (where rlexport's exact ``CartPoleVec`` is
# not used): measured side by side (benchmarks/train.py env-only rows, 1 thread), CartPoleVectorEnv's
# ~40 numpy calls per step cost more than 4 Python CartPole steps (0.85x SyncVectorEnv's steps/s at
# 4 envs, 0.4x at 1) and less from 8 on (2.1x at 8, 3.4x at 16, 11x at 64).
NATIVE_MIN_ENVS = 8
# ``auto`` uses ``CartPoleVec`` (exact, a Python loop over the envs) below this many envs and
# Gymnasium's numpy ``CartPoleVectorEnv`` from it on, where one numpy call per quantity for all envs
# costs less than the loop: side by side, 1 thread, random actions, CartPoleVec / native steps/s =
# 5.6 at 4 envs, 3.1 at 32, 0.44 at 64 (and CartPoleVec / SyncVectorEnv = 4.5 at 4).
FAST_MAX_ENVS = 64


def resolve_vector_env(env_id: str, choice: str, num_envs: int = NATIVE_MIN_ENVS) -> str:
    """``"sync"``, ``"native"`` or ``"fast"`` for ``choice`` in ``VECTOR_ENVS``.

    ``auto``: ``"fast"`` (``CartPoleVec``) for CartPole below ``FAST_MAX_ENVS`` envs, else
    ``"native"`` where supported and ``num_envs >= NATIVE_MIN_ENVS``, else ``"sync"``. ``EnvError``
    if ``"native"`` or ``"fast"`` is asked of an environment without that implementation."""
    if choice not in VECTOR_ENVS:
        raise EnvError(f"--vector-env {choice!r} is not supported; choose one of {list(VECTOR_ENVS)}")
    check_env_id(env_id)
    native = _native_vector_entry(env_id) is not None
    fast = _fast_supported(env_id)
    if choice == "native" and not native:
        raise EnvError(f"--vector-env native: {env_id!r} has no supported native vector implementation "
                       f"(only {SameStepCartPole.ENTRY_POINT.split(':')[-1]}); use --vector-env sync")
    if choice == "fast" and not fast:
        raise EnvError(f"--vector-env fast: {env_id!r} is not Gymnasium's CartPole with default arguments "
                       "(the only environment rlexport reimplements); use --vector-env sync")
    if choice == "auto":
        if fast and num_envs < FAST_MAX_ENVS:
            return "fast"
        return "native" if native and num_envs >= NATIVE_MIN_ENVS else "sync"
    return choice


def make_vec_env(env_id: str, num_envs: int, vector_env: str = "sync"):
    """``num_envs`` copies of ``env_id`` with same-step autoreset: a ``SyncVectorEnv``, with
    ``vector_env="native"`` the native numpy vector env, with ``"fast"`` rlexport's ``CartPoleVec``
    (``"auto"``: see ``resolve_vector_env``)."""
    kind = resolve_vector_env(env_id, vector_env, num_envs)
    if kind == "native":
        return SameStepCartPole(gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point"))
    if kind == "fast":
        return CartPoleVec(num_envs, gym.registry[env_id].max_episode_steps)
    return gym.vector.SyncVectorEnv(
        [lambda: gym.make(env_id) for _ in range(num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )


class CartPoleVec:
    """``num_envs`` Gymnasium ``CartPole-v1`` (or -v0) environments, stepped exactly as
    ``SyncVectorEnv([gym.make(id)] * num_envs, autoreset_mode=SAME_STEP)`` steps them, at a
    fraction of its cost for a few envs (no wrappers, no per-env ``np.array`` per step).

    The same semantics, operation for operation: ``CartPoleEnv.step``'s Euler dynamics in float64
    (``np.cos``/``np.sin`` for the trigonometry, every other operation in the same order on Python
    floats, which round as numpy's float64 scalars do), termination at ``|x| > 2.4`` or
    ``|theta| > 12 deg``, reward 1.0 on every step, truncation once an episode has run
    ``max_episode_steps`` steps (``TimeLimit``), float32 observations. Seeding: ``reset(seed=s)``
    seeds sub-env ``i`` with ``s + i`` (Gymnasium's ``np_random``, one generator per env); a
    finished episode's env is reset at once from its own generator (``uniform(-0.05, 0.05,
    size=4)``), the step returns the new episode's first observation and puts the real last one
    in ``info["final_obs"]`` (``[num_envs, 4]``; ``info["_final_obs"]`` the mask of ended envs).
    Tested step for step against Gymnasium's own environments (``tests/train/test_fast_env.py``).
    """

    ENTRY_POINT = "gymnasium.envs.classic_control.cartpole:CartPoleEnv"
    # CartPoleEnv.__init__'s constants, computed as it computes them
    GRAVITY = 9.8
    MASSPOLE = 0.1
    TOTAL_MASS = MASSPOLE + 1.0
    LENGTH = 0.5
    POLEMASS_LENGTH = MASSPOLE * LENGTH
    FORCE_MAG = 10.0
    TAU = 0.02
    THETA_THRESHOLD_RADIANS = 12 * 2 * math.pi / 360
    X_THRESHOLD = 2.4

    def __init__(self, num_envs: int, max_episode_steps: int = 500):
        self.num_envs = int(num_envs)
        self.max_episode_steps = int(max_episode_steps)
        env = gym.make("CartPole-v1")  # the spaces, exactly Gymnasium's
        self.single_observation_space = env.observation_space
        self.single_action_space = env.action_space
        env.close()
        self.rngs: list[np.random.Generator | None] = [None] * self.num_envs
        self.states: list[list[float]] = [[0.0] * 4 for _ in range(self.num_envs)]
        self.elapsed: list[int] = [0] * self.num_envs
        self._reward = np.ones(self.num_envs, np.float64)
        self._no_info: dict[str, Any] = {}

    def _reset_env(self, i: int) -> None:
        self.states[i] = self.rngs[i].uniform(low=-0.05, high=0.05, size=(4,)).tolist()
        self.elapsed[i] = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if options:
            raise EnvError(f"CartPoleVec.reset: options are not supported (got {sorted(options)})")
        for i in range(self.num_envs):
            if seed is not None or self.rngs[i] is None:
                self.rngs[i], _ = seeding.np_random(None if seed is None else int(seed) + i)
            self._reset_env(i)
        return np.array(self.states, np.float32), {}

    def step(self, action: np.ndarray):
        actions = np.asarray(action).reshape(-1).tolist()
        if len(actions) != self.num_envs:
            raise EnvError(f"CartPoleVec.step: expected {self.num_envs} actions, got shape {np.shape(action)}")
        states, elapsed, limit = self.states, self.elapsed, self.max_episode_steps
        thetas = [s[2] for s in states]
        cos, sin = np.cos(thetas).tolist(), np.sin(thetas).tolist()
        g, mp, tm, length, pml, tau = self.GRAVITY, self.MASSPOLE, self.TOTAL_MASS, self.LENGTH, self.POLEMASS_LENGTH, self.TAU
        x_lim, th_lim, force_mag = self.X_THRESHOLD, self.THETA_THRESHOLD_RADIANS, self.FORCE_MAG
        terminated, truncated = [False] * self.num_envs, [False] * self.num_envs
        ended = []
        for i, a in enumerate(actions):
            if a != 0 and a != 1:
                raise EnvError(f"CartPoleVec.step: action {a!r} of env {i} is not in Discrete(2)")
            x, x_dot, theta, theta_dot = states[i]
            force = force_mag if a == 1 else -force_mag
            costheta, sintheta = cos[i], sin[i]
            temp = (force + pml * (theta_dot * theta_dot) * sintheta) / tm
            thetaacc = (g * sintheta - costheta * temp) / (length * (4.0 / 3.0 - mp * (costheta * costheta) / tm))
            xacc = temp - pml * thetaacc * costheta / tm
            x = x + tau * x_dot
            x_dot = x_dot + tau * xacc
            theta = theta + tau * theta_dot
            theta_dot = theta_dot + tau * thetaacc
            states[i] = [x, x_dot, theta, theta_dot]
            term = x < -x_lim or x > x_lim or theta < -th_lim or theta > th_lim
            elapsed[i] += 1
            trunc = elapsed[i] >= limit
            if term or trunc:
                terminated[i], truncated[i] = term, trunc
                ended.append(i)
        obs = np.array(states, np.float32)
        term_arr, trunc_arr = np.array(terminated), np.array(truncated)
        if not ended:
            return obs, self._reward.copy(), term_arr, trunc_arr, self._no_info
        for i in ended:
            self._reset_env(i)
        info = {"final_obs": obs, "_final_obs": term_arr | trunc_arr}
        return np.array(states, np.float32), self._reward.copy(), term_arr, trunc_arr, info

    def close(self) -> None:
        pass

    # snapshots (see snapshot_vec)
    def snapshot(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = {"fast": "CartPoleVec", "np_random": [r.bit_generator.state for r in self.rngs],
                "max_episode_steps": self.max_episode_steps}
        return meta, {"state": np.array(self.states, np.float64), "elapsed": np.array(self.elapsed, np.int64)}

    def restore(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        if meta.get("fast") != "CartPoleVec" or len(meta.get("np_random", [])) != self.num_envs:
            raise EnvError(f"the checkpoint's environment states are not those of {self.num_envs} CartPoleVec envs")
        for i, st in enumerate(meta["np_random"]):
            self.rngs[i], _ = seeding.np_random(0)
            self.rngs[i].bit_generator.state = st
        self.states = np.asarray(arrays["state"], np.float64).tolist()
        self.elapsed = [int(v) for v in np.asarray(arrays["elapsed"]).reshape(-1)]


class SameStepCartPole:
    """Gymnasium's ``CartPoleVectorEnv`` (next-step autoreset) driven with same-step autoreset.

    ``step`` returns, for a sub-environment whose episode ended (terminated or truncated at
    ``max_episode_steps``), the first observation of its next episode, and its real last
    observation in ``info["final_obs"]`` (``[num_envs, 4]``; rows of the other envs equal the
    returned observation) with ``info["_final_obs"]`` the mask of ended envs. The new start state
    is drawn as ``CartPoleVectorEnv.step`` would draw it one call later (``np_random.uniform``
    over ``[low, high]``, shape ``[4, ended]``), so the episodes are the native env's own.
    """

    ENTRY_POINT = "gymnasium.envs.classic_control.cartpole:CartPoleVectorEnv"

    def __init__(self, env: Any):
        self.env = env
        self.num_envs = env.num_envs
        self.single_observation_space = env.single_observation_space
        self.single_action_space = env.single_action_space
        self._no_info: dict[str, Any] = {}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        return self.env.reset(seed=seed, options=options)

    def step(self, action: np.ndarray):
        env = self.env
        obs, reward, terminated, truncated, _ = env.step(action)
        done = terminated | truncated
        if not done.any():
            return obs, reward, terminated, truncated, self._no_info
        final = obs
        env.state[:, done] = env.np_random.uniform(low=env.low, high=env.high, size=(4, int(done.sum())))
        env.steps[done] = 0
        env.prev_done[:] = False
        obs = env.state.T.astype(np.float32)
        return obs, reward, terminated, truncated, {"final_obs": final, "_final_obs": done}

    def close(self) -> None:
        self.env.close()

    # snapshots (see snapshot_vec)
    def snapshot(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        env = self.env
        meta = {"native": self.ENTRY_POINT, "np_random": env.np_random.bit_generator.state,
                "low": float(env.low), "high": float(env.high)}
        return meta, {"state": np.array(env.state, np.float64), "steps": np.array(env.steps, np.int64)}

    def restore(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        env = self.env
        if meta.get("native") != self.ENTRY_POINT:
            raise EnvError(f"checkpoint holds {meta.get('native') or 'SyncVectorEnv'} states, not {self.ENTRY_POINT}")
        env.np_random.bit_generator.state = meta["np_random"]
        env.low, env.high = meta["low"], meta["high"]
        env.state = np.array(arrays["state"], np.float64)
        env.steps = np.array(arrays["steps"], np.int32)
        env.prev_done = np.zeros(self.num_envs, np.bool_)


class RunningMeanStd:
    """Running mean / variance (parallel algorithm, float64), as Gymnasium's normalisation wrappers."""

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4):
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = float(epsilon)

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, np.float64)
        batch_mean, batch_var, batch_count = x.mean(axis=0), x.var(axis=0), x.shape[0]
        delta = batch_mean - self.mean
        tot = self.count + batch_count
        new_mean = self.mean + delta * batch_count / tot
        m2 = self.var * self.count + batch_var * batch_count + delta**2 * self.count * batch_count / tot
        self.mean, self.var, self.count = new_mean, m2 / tot, tot

    def state(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}.mean": self.mean, f"{prefix}.var": self.var, f"{prefix}.count": np.array([self.count])}

    def load(self, prefix: str, tensors: dict[str, np.ndarray]) -> None:
        self.mean = np.asarray(tensors[f"{prefix}.mean"], np.float64).copy()
        self.var = np.asarray(tensors[f"{prefix}.var"], np.float64).copy()
        self.count = float(np.asarray(tensors[f"{prefix}.count"]).reshape(-1)[0])


class ObsNormalizer:
    """``clip((x - mean) / sqrt(var + eps), -clip, clip)`` with running statistics (or identity)."""

    def __init__(self, dim: int, enabled: bool, clip: float = 10.0, eps: float = 1e-8):
        self.enabled, self.clip, self.eps = enabled, clip, eps
        self.rms = RunningMeanStd((dim,))

    def update(self, obs: np.ndarray) -> None:
        if self.enabled:
            self.rms.update(obs)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        if not self.enabled:
            return np.asarray(obs, np.float32)
        out = (obs - self.rms.mean) / np.sqrt(self.rms.var + self.eps)
        return np.clip(out, -self.clip, self.clip).astype(np.float32)


class RewardScaler:
    """Gymnasium's ``NormalizeReward``: divide by the std of the discounted return (or identity)."""

    def __init__(self, num_envs: int, gamma: float, enabled: bool, clip: float = 10.0, eps: float = 1e-8):
        self.enabled, self.gamma, self.clip, self.eps = enabled, gamma, clip, eps
        self.rms = RunningMeanStd(())
        self.returns = np.zeros(num_envs, np.float64)

    def __call__(self, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        if not self.enabled:
            return reward
        reward = np.asarray(reward, np.float64)
        self.returns = self.returns * self.gamma + reward
        self.rms.update(self.returns)
        out = reward / np.sqrt(self.rms.var + self.eps)
        self.returns[done] = 0.0
        return np.clip(out, -self.clip, self.clip).astype(np.float32)


# -- snapshots -----------------------------------------------------------------------------


def _wrappers(env: Any) -> list[Any]:
    chain = []
    while env is not None:
        chain.append(env)
        env = getattr(env, "env", None)
    return chain


def snapshot_env(env: Any) -> tuple[dict[str, Any], dict[str, np.ndarray], bool]:
    """``(json_meta, arrays, exact)`` for one sub-environment."""
    meta: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    for i, w in enumerate(_wrappers(env)):
        if hasattr(w, "_elapsed_steps"):
            meta[f"elapsed_steps.{i}"] = w._elapsed_steps
    u = env.unwrapped
    meta["np_random"] = u.np_random.bit_generator.state if getattr(u, "_np_random", None) is not None else None
    exact = True
    if hasattr(u, "data") and hasattr(u, "set_state") and hasattr(u.data, "qpos"):  # MuJoCo
        arrays["qpos"] = np.array(u.data.qpos, np.float64)
        arrays["qvel"] = np.array(u.data.qvel, np.float64)
    elif getattr(u, "state", None) is not None:  # classic control
        state = u.state
        arrays["state"] = np.array(state, np.float64)
        meta["state_type"] = type(state).__name__
        meta["state_dtype"] = str(np.asarray(state).dtype)
        if hasattr(u, "steps_beyond_terminated"):
            meta["steps_beyond_terminated"] = u.steps_beyond_terminated
    else:
        exact = False
    return meta, arrays, exact


def restore_env(env: Any, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    for i, w in enumerate(_wrappers(env)):
        key = f"elapsed_steps.{i}"
        if key in meta and hasattr(w, "_elapsed_steps"):
            w._elapsed_steps = meta[key]
    u = env.unwrapped
    if meta.get("np_random") is not None:
        u.np_random.bit_generator.state = meta["np_random"]
    if "qpos" in arrays:
        u.set_state(arrays["qpos"], arrays["qvel"])
    elif "state" in arrays:
        value = np.asarray(arrays["state"]).astype(meta.get("state_dtype", "float64"))
        u.state = tuple(value.tolist()) if meta.get("state_type") == "tuple" else value
        if "steps_beyond_terminated" in meta:
            u.steps_beyond_terminated = meta["steps_beyond_terminated"]


def snapshot_vec(vec) -> tuple[list[dict[str, Any]], dict[str, np.ndarray], bool]:
    """``(json metas, arrays "env.<i>.<name>", exact)`` of a ``make_vec_env`` vector env."""
    if isinstance(vec, (SameStepCartPole, CartPoleVec)):
        meta, arrays = vec.snapshot()
        return [meta], {f"env.native.{k}": v for k, v in arrays.items()}, True
    metas, arrays, exact = [], {}, True
    for i, env in enumerate(vec.envs):
        m, a, e = snapshot_env(env)
        metas.append(m)
        arrays.update({f"env.{i}.{k}": v for k, v in a.items()})
        exact &= e
    return metas, arrays, exact


def restore_vec(vec, metas: list[dict[str, Any]], arrays: dict[str, np.ndarray]) -> None:
    """Put ``vec`` back in the state ``snapshot_vec`` recorded; ``EnvError`` if it does not fit."""
    for cls, marker in ((CartPoleVec, "fast"), (SameStepCartPole, "native")):  # one-array vector envs
        recorded = len(metas) == 1 and marker in metas[0]
        if isinstance(vec, cls) or recorded:
            if not (isinstance(vec, cls) and recorded):
                raise EnvError("the checkpoint's environment states are of another vector env kind than the config's")
            vec.restore(metas[0], {k[len("env.native."):]: v for k, v in arrays.items() if k.startswith("env.native.")})
            return
    if len(metas) != len(vec.envs):
        raise EnvError(f"the checkpoint holds {len(metas)} environment states, the config {len(vec.envs)} envs")
    for i, env in enumerate(vec.envs):
        prefix = f"env.{i}."
        restore_env(env, metas[i], {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})


def vector_env_classes() -> tuple[type, ...]:
    """The vector-env classes ``make_vec_env`` can return (benchmarks time their ``step``)."""
    return (gym.vector.SyncVectorEnv, SameStepCartPole, CartPoleVec)
