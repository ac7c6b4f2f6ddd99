"""Record what the JS host's parity tests compare against (examples/js/test/parity.test.js).

    python examples/js/make_parity.py --out DIR

Writes, under DIR:

* ``cartpole.json`` — Gymnasium's CartPole-v1 (``gym.make``, so with its 500-step ``TimeLimit``)
  stepped from explicit float64 states with given actions: per step the state, the float32
  observation, reward, terminated and truncated (one segment ends by truncation at step 500).
* ``bundle/`` — ``rlexport bundle`` of PPO on CartPole-v1 with rlexport train's defaults (4 envs x
  128 steps, 4 epochs x 4 minibatches), ``--total-steps`` (default 50 000) and seed 1; the
  short-training test (test/learn.test.js) trains from it too.
* ``engine/`` — golden-format tensors recorded from ``rlexport train``'s ONNX engine
  (``rlexport.train.loop.Trainer`` with ``engine="onnx"``, the same configuration and seed) over
  ``--iterations`` iterations: every env's reset states, the sampling noise and minibatch
  permutations drawn from the trainer's generator (inputs), and after each iteration the rollout
  buffer, the advantages and the whole training state (outputs).

A host given the same reset states, noise and permutations must reproduce the rollout exactly
(actions) or to float tolerance, and the training state after each iteration to float tolerance.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from rlexport.export import write_golden
from rlexport.train.bundle import make_bundle
from rlexport.train.config import make_config
from rlexport.train.loop import Trainer

SEED = 1


def cartpole_trace(seed: int = 0) -> dict:
    import gymnasium as gym

    env = gym.make("CartPole-v1")
    env.reset(seed=seed)
    limit = next(w for w in _wrappers(env) if isinstance(w, gym.wrappers.TimeLimit))
    rng = np.random.default_rng(seed)
    segments = []

    def run(state, elapsed, policy, max_steps):
        env.unwrapped.state = np.array(state, np.float64)
        env.unwrapped.steps_beyond_terminated = None
        limit._elapsed_steps = elapsed
        seg = {"state0": [float(s) for s in state], "elapsed0": elapsed, "actions": [], "states": [], "observations": [],
               "rewards": [], "terminated": [], "truncated": []}
        for _ in range(max_steps):
            a = int(policy(env.unwrapped.state))
            obs, r, term, trunc, _ = env.step(a)
            seg["actions"].append(a)
            seg["states"].append([float(s) for s in env.unwrapped.state])
            seg["observations"].append([float(o) for o in np.asarray(obs, np.float32)])
            seg["rewards"].append(float(r))
            seg["terminated"].append(bool(term))
            seg["truncated"].append(bool(trunc))
            if term or trunc:
                break
        segments.append(seg)

    for _ in range(4):  # random actions from random starts until termination
        run(rng.uniform(-0.05, 0.05, 4), 0, lambda s: rng.integers(2), 500)
    run(rng.uniform(-0.2, 0.2, 4), 0, lambda s: rng.integers(2), 500)  # wider starts
    # a balancing controller: a whole 500-step episode, truncated (not terminated)
    run([0.01, 0.0, 0.01, 0.0], 0, lambda s: int(s[2] + 0.5 * s[3] + 0.01 * s[0] + 0.1 * s[1] > 0), 600)
    # and one that starts at TimeLimit's step 490
    run([0.0, 0.1, -0.01, 0.0], 490, lambda s: int(s[2] + 0.5 * s[3] + 0.01 * s[0] + 0.1 * s[1] > 0), 600)
    env.close()
    return {"env": "CartPole-v1", "max_episode_steps": 500, "segments": segments}


def _wrappers(env):
    while env is not None:
        yield env
        env = getattr(env, "env", None)


class RecordingGenerator:
    """The trainer's numpy generator, recording what the loop draws (noise, permutations)."""

    def __init__(self, rng: np.random.Generator):
        self.rng, self.noise, self.perms = rng, [], []

    def random(self, *args, **kwargs):
        out = self.rng.random(*args, **kwargs)
        self.noise.append(np.asarray(out, np.float32))
        return out

    def standard_normal(self, *args, **kwargs):
        out = self.rng.standard_normal(*args, **kwargs)
        self.noise.append(np.asarray(out, np.float32))
        return out

    def permutation(self, n):
        out = self.rng.permutation(n)
        self.perms.append(np.asarray(out, np.int64))
        return out

    def __getattr__(self, name):
        return getattr(self.rng, name)


def engine_trace(out: Path, iterations: int, total_steps: int):
    cfg = make_config("ppo", "CartPole-v1", engine="onnx", export_artifacts=False, total_steps=total_steps, seed=SEED,
                      vector_env="sync")  # per-env reset states are recorded from the SyncVectorEnv's envs
    run_dir = Path(tempfile.mkdtemp(prefix="rlexport-parity-"))
    try:
        trainer = Trainer(cfg, run_dir)
        resets: list[list[np.ndarray]] = [[np.array(e.unwrapped.state, np.float64)] for e in trainer.vec.envs]
        for i, env in enumerate(trainer.vec.envs):
            u = env.unwrapped
            original = u.reset

            def recording_reset(*args, _u=u, _orig=original, _i=i, **kwargs):
                res = _orig(*args, **kwargs)
                resets[_i].append(np.array(_u.state, np.float64))
                return res

            u.reset = recording_reset
        initial = {k: v.numpy() for k, v in trainer.engine.state().items()}
        rec = RecordingGenerator(trainer.rng)
        trainer.rng = rec
        cases = []
        for it in range(iterations):
            n0, p0 = len(rec.noise), len(rec.perms)
            trainer.collect(None)
            rollout = {k: v.copy() for k, v in trainer.buf.items()}
            adv, vt = trainer.engine.gae(trainer.buf)
            trainer.learn()
            # one row per env step, whether the loop drew the noise per step or a rollout at once
            per_step = int(np.prod(trainer.spec.noise_shape(cfg.num_envs)))
            noise = np.concatenate([a.reshape(-1) for a in rec.noise[n0:]]).reshape(-1, per_step)
            inputs = {"noise": noise, "permutations": np.stack(rec.perms[p0:])}
            outputs = {**{f"rollout.{k}": v for k, v in rollout.items()}, "advantage": adv, "value_target": vt,
                       **{f"state.{k}": v.numpy() for k, v in trainer.engine.state().items()}}
            cases.append((f"iteration{it}", inputs, outputs))
        trainer.close()
        # every env's reset states (the first one: the reset before the first rollout)
        reset_inputs = {f"resets.{i}": np.stack(r) for i, r in enumerate(resets)}
        cases.insert(0, ("resets", reset_inputs, {}))
        write_golden(out / "engine", cases, artifact="../bundle/bundle.json", kind="engine_trace", rtol=1e-4, atol=1e-5,
                     initial_state=initial, extra={"config": json.loads(cfg.to_json())})
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    return cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--iterations", type=int, default=2, help="rollout + update iterations to record (2)")
    ap.add_argument("--total-steps", type=int, default=50_000, help="the bundle's schedule (50000)")
    args = ap.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    (args.out / "cartpole.json").write_text(json.dumps(cartpole_trace(), allow_nan=False) + "\n")
    cfg = engine_trace(args.out, args.iterations, args.total_steps)
    make_bundle(cfg, args.out / "bundle")
    print(f"parity data written to {args.out}")


if __name__ == "__main__":
    main()
