"""Long training runs and throughput of ``rlexport train`` vs a CleanRL ``ppo.py`` re-implementation.

    python benchmarks/train.py table [--steps 500000]          # issue 15's table: env-only ceilings, CleanRL, both engines
    python benchmarks/train.py throughput [--steps 51200]      # steps/s: CleanRL loop, torch, onnx
    python benchmarks/train.py returns --env CartPole-v1 --engine torch --seed 1 [--steps 500000]
    python benchmarks/train.py cleanrl --seed 1 --steps 500000 # the baseline's own learning run
    python benchmarks/train.py all                             # the whole table (hours on 2 cores)

Targets: CartPole-v1 500k steps, mean return of the last 20 episodes >= 475 (seeds 1, 2, 3, both
engines); Pendulum-v1 300k steps >= -300. Every run uses one torch thread and one ORT thread
(``OMP_WAIT_POLICY=PASSIVE``); steps/s counts the training loop only (engine start-up, i.e. the
ONNX exports, excluded and reported separately). Results are appended as JSON lines to
``--results`` (default ``/tmp/rlexport-train-bench.jsonl``).

``cleanrl_ppo`` below is CleanRL's ``ppo.py`` (discrete actions) written out with its defaults:
same network, init, GAE loop, minibatch loop, clipped value loss, Adam(eps=1e-5), linear lr decay,
``clip_grad_norm_(0.5)``. Envs: ``SyncVectorEnv`` in same-step autoreset (Gymnasium 0.29's
behaviour that ``ppo.py`` was written for), no truncation bootstrap (as ``ppo.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
from torch import nn


# ----------------------------------------------------------------------------------------------
# CleanRL ppo.py, faithfully (https://github.com/vwxyzjn/cleanrl/blob/master/cleanrl/ppo.py)
# ----------------------------------------------------------------------------------------------
def _layer_init(layer, std=np.sqrt(2), bias_const=0.0):
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


class CleanRLAgent(nn.Module):
    def __init__(self, obs_dim, n_actions):
        super().__init__()
        self.critic = nn.Sequential(
            _layer_init(nn.Linear(obs_dim, 64)), nn.Tanh(), _layer_init(nn.Linear(64, 64)), nn.Tanh(),
            _layer_init(nn.Linear(64, 1), std=1.0),
        )
        self.actor = nn.Sequential(
            _layer_init(nn.Linear(obs_dim, 64)), nn.Tanh(), _layer_init(nn.Linear(64, 64)), nn.Tanh(),
            _layer_init(nn.Linear(64, n_actions), std=0.01),
        )

    def get_value(self, x):
        return self.critic(x)

    def get_action_and_value(self, x, action=None):
        logits = self.actor(x)
        probs = torch.distributions.Categorical(logits=logits)
        if action is None:
            action = probs.sample()
        return action, probs.log_prob(action), probs.entropy(), self.critic(x)


def cleanrl_ppo(env_id="CartPole-v1", seed=1, total_timesteps=500_000, learning_rate=2.5e-4, num_envs=4,
                num_steps=128, anneal_lr=True, gamma=0.99, gae_lambda=0.95, num_minibatches=4, update_epochs=4,
                norm_adv=True, clip_coef=0.2, clip_vloss=True, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5,
                target_kl=None, log=None):
    import gymnasium as gym
    import random

    batch_size = num_envs * num_steps
    minibatch_size = batch_size // num_minibatches
    num_iterations = total_timesteps // batch_size
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    envs = gym.vector.SyncVectorEnv(
        [lambda: gym.make(env_id) for _ in range(num_envs)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )
    agent = CleanRLAgent(int(np.prod(envs.single_observation_space.shape)), envs.single_action_space.n)
    optimizer = torch.optim.Adam(agent.parameters(), lr=learning_rate, eps=1e-5)
    obs = torch.zeros((num_steps, num_envs) + envs.single_observation_space.shape)
    actions = torch.zeros((num_steps, num_envs) + envs.single_action_space.shape)
    logprobs = torch.zeros((num_steps, num_envs))
    rewards = torch.zeros((num_steps, num_envs))
    dones = torch.zeros((num_steps, num_envs))
    values = torch.zeros((num_steps, num_envs))
    global_step = 0
    start_time = time.time()
    next_obs, _ = envs.reset(seed=seed)
    next_obs = torch.Tensor(next_obs)
    next_done = torch.zeros(num_envs)
    ep_ret, ep_len = np.zeros(num_envs), np.zeros(num_envs, int)
    recent = deque(maxlen=20)
    for iteration in range(1, num_iterations + 1):
        if anneal_lr:
            frac = 1.0 - (iteration - 1.0) / num_iterations
            optimizer.param_groups[0]["lr"] = frac * learning_rate
        for step in range(0, num_steps):
            global_step += num_envs
            obs[step] = next_obs
            dones[step] = next_done
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs)
                values[step] = value.flatten()
            actions[step] = action
            logprobs[step] = logprob
            next_obs, reward, terminations, truncations, infos = envs.step(action.cpu().numpy())
            next_done = np.logical_or(terminations, truncations)
            rewards[step] = torch.tensor(reward).view(-1)
            ep_ret += reward
            ep_len += 1
            for i in np.nonzero(next_done)[0]:  # RecordEpisodeStatistics
                recent.append(ep_ret[i])
                ep_ret[i], ep_len[i] = 0, 0
            next_obs, next_done = torch.Tensor(next_obs), torch.Tensor(next_done)
        with torch.no_grad():
            next_value = agent.get_value(next_obs).reshape(1, -1)
            advantages = torch.zeros_like(rewards)
            lastgaelam = 0
            for t in reversed(range(num_steps)):
                if t == num_steps - 1:
                    nextnonterminal = 1.0 - next_done
                    nextvalues = next_value
                else:
                    nextnonterminal = 1.0 - dones[t + 1]
                    nextvalues = values[t + 1]
                delta = rewards[t] + gamma * nextvalues * nextnonterminal - values[t]
                advantages[t] = lastgaelam = delta + gamma * gae_lambda * nextnonterminal * lastgaelam
            returns = advantages + values
        b_obs = obs.reshape((-1,) + envs.single_observation_space.shape)
        b_logprobs = logprobs.reshape(-1)
        b_actions = actions.reshape((-1,) + envs.single_action_space.shape)
        b_advantages = advantages.reshape(-1)
        b_returns = returns.reshape(-1)
        b_values = values.reshape(-1)
        b_inds = np.arange(batch_size)
        for epoch in range(update_epochs):
            np.random.shuffle(b_inds)
            for start in range(0, batch_size, minibatch_size):
                end = start + minibatch_size
                mb_inds = b_inds[start:end]
                _, newlogprob, entropy, newvalue = agent.get_action_and_value(b_obs[mb_inds], b_actions.long()[mb_inds])
                logratio = newlogprob - b_logprobs[mb_inds]
                ratio = logratio.exp()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - logratio).mean()
                mb_advantages = b_advantages[mb_inds]
                if norm_adv:
                    mb_advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std() + 1e-8)
                pg_loss1 = -mb_advantages * ratio
                pg_loss2 = -mb_advantages * torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef)
                pg_loss = torch.max(pg_loss1, pg_loss2).mean()
                newvalue = newvalue.view(-1)
                if clip_vloss:
                    v_loss_unclipped = (newvalue - b_returns[mb_inds]) ** 2
                    v_clipped = b_values[mb_inds] + torch.clamp(newvalue - b_values[mb_inds], -clip_coef, clip_coef)
                    v_loss_clipped = (v_clipped - b_returns[mb_inds]) ** 2
                    v_loss = 0.5 * torch.max(v_loss_unclipped, v_loss_clipped).mean()
                else:
                    v_loss = 0.5 * ((newvalue - b_returns[mb_inds]) ** 2).mean()
                entropy_loss = entropy.mean()
                loss = pg_loss - ent_coef * entropy_loss + v_loss * vf_coef
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), max_grad_norm)
                optimizer.step()
            if target_kl is not None and approx_kl > target_kl:
                break
        if log is not None:
            log(global_step, float(np.mean(recent)) if recent else float("nan"), global_step / (time.time() - start_time))
    envs.close()
    elapsed = time.time() - start_time
    return {"global_step": global_step, "mean_return_last_20": float(np.mean(recent)) if recent else None,
            "steps_per_s": global_step / elapsed, "wall_s": elapsed}


# ----------------------------------------------------------------------------------------------
def run_rlexport(env_id, engine, seed, steps, algo="ppo", export=False, out=None, **overrides):
    from rlexport.train import make_config, train

    tmp = None
    if out is None:
        tmp = tempfile.mkdtemp(prefix="rlexport-bench-")
        out = Path(tmp) / "run"
    cfg = make_config(algo, env_id, engine=engine, seed=seed, total_steps=steps, out=str(out),
                      export_artifacts=export, **overrides)
    t0 = time.time()
    res = train(cfg)
    wall = time.time() - t0
    out_d = {"env": env_id, "algo": algo, "engine": engine, "seed": seed, "steps": res.global_step,
             "mean_return_last_20": res.mean_return, "steps_per_s": res.steps_per_s, "wall_s": wall,
             "startup_s": wall - res.global_step / res.steps_per_s, "run_dir": str(out)}
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_d


def env_only(vector_env: str, steps: int = 500_000, num_envs: int = 4, seed: int = 1) -> dict:
    """The ceiling: CartPole-v1 stepped with uniformly random actions and nothing else, through the
    vector env ``rlexport train`` uses (``sync``: ``SyncVectorEnv``; ``native``: the same-step
    ``CartPoleVectorEnv``; ``fast``: rlexport's exact ``CartPoleVec``, the default)."""
    from rlexport.train.envs import make_vec_env

    vec = make_vec_env("CartPole-v1", num_envs, vector_env)
    vec.reset(seed=seed)
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, 2, (steps // num_envs, num_envs))
    t0 = time.perf_counter()
    for a in actions:
        vec.step(a)
    elapsed = time.perf_counter() - t0
    vec.close()
    n = len(actions) * num_envs
    return {"global_step": n, "wall_s": elapsed, "steps_per_s": n / elapsed, "mean_return_last_20": None}


def table(steps: int, seed: int, results: str) -> list[dict]:
    """Issue 15's table, every row measured in this one invocation, one after the other."""
    runs = [
        ("env only, SyncVectorEnv (4)", lambda: env_only("sync", steps, seed=seed)),
        ("env only, native CartPole (4)", lambda: env_only("native", steps, seed=seed)),
        ("env only, fast CartPole (4)", lambda: env_only("fast", steps, seed=seed)),
        ("CleanRL ppo.py (re-impl.)", lambda: cleanrl_ppo(total_timesteps=steps, seed=seed)),
    ]
    for engine in ("torch", "onnx"):
        def one(engine=engine):
            r = run_rlexport("CartPole-v1", engine, seed, steps, export=True)
            return dict(r, global_step=r["steps"])
        runs.append((f"rlexport train --engine {engine}", one))
    rows = []
    for kind, fn in runs:  # each row emitted as soon as it is measured
        rows.append(dict(kind=kind, **fn()))
        _emit({"bench": "table", "seed": seed, **{k: v for k, v in rows[-1].items() if k != "run_dir"}}, results)
    print(f"\nCartPole-v1 PPO, {steps} steps, seed {seed}, 1 torch thread, 1 ORT thread")
    print(f"| {'run':<32} | {'wall s':>7} | {'steps/s while training':>22} | {'final return':>12} |")
    print(f"|{'-' * 34}|{'-' * 8}:|{'-' * 23}:|{'-' * 13}:|")
    for r in rows:
        ret = r["mean_return_last_20"]
        print(f"| {r['kind']:<32} | {r['wall_s']:>7.1f} | {r['steps_per_s']:>22.0f} | "
              f"{'-' if ret is None else f'{ret:.0f}':>12} |")
    return rows


def _emit(row, path):
    print(json.dumps(row), flush=True)
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["table", "throughput", "returns", "cleanrl", "all"])
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--engine", default="torch", choices=["torch", "onnx"])
    p.add_argument("--algo", default="ppo", choices=["ppo", "a2c"])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--out", default=None, help="keep the run folder here (returns)")
    p.add_argument("--box-distribution", default=None, choices=["normal", "tanh_normal"],
                   help="returns: the actor of a Box action space (default: the config's, normal)")
    p.add_argument("--results", default="/tmp/rlexport-train-bench.jsonl")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    if a.what == "table":
        table(a.steps or 500_000, a.seed, a.results)
    elif a.what == "throughput":
        steps = a.steps or 51_200
        runs = [("cleanrl-ppo.py", lambda: cleanrl_ppo(total_timesteps=steps, seed=a.seed))]
        for engine in ("torch", "onnx"):
            runs.append((f"rlexport-{engine}", lambda engine=engine: run_rlexport("CartPole-v1", engine, a.seed, steps)))
        rows = []
        for kind, fn in runs:  # process CPU seconds too: a ratio that a busy machine distorts less than wall time
            cpu = time.process_time()
            rows.append(dict(kind=kind, **fn()))
            rows[-1]["cpu_s"] = time.process_time() - cpu
        for r in rows:
            _emit({"bench": "throughput", **r}, a.results)
        base = rows[0]["steps_per_s"]
        print(f"\n{'loop':<20}{'steps':>8}{'steps/s':>10}{'x CleanRL':>10}{'cpu s':>8}{'startup s':>11}{'return(20)':>12}")
        for r in rows:
            print(f"{r['kind']:<20}{r.get('global_step', r.get('steps')):>8}{r['steps_per_s']:>10.0f}"
                  f"{r['steps_per_s'] / base:>10.2f}{r['cpu_s']:>8.1f}"
                  f"{r.get('startup_s', 0.0):>11.1f}{(r['mean_return_last_20'] or float('nan')):>12.1f}")
    elif a.what == "returns":
        steps = a.steps or (300_000 if a.env == "Pendulum-v1" else 500_000)
        overrides = {} if a.box_distribution is None else {"box_distribution": a.box_distribution}
        row = run_rlexport(a.env, a.engine, a.seed, steps, algo=a.algo, out=a.out, **overrides)
        _emit({"bench": "returns", **overrides, **row}, a.results)
    elif a.what == "cleanrl":
        _emit({"bench": "cleanrl", "seed": a.seed, **cleanrl_ppo(total_timesteps=a.steps or 500_000, seed=a.seed)},
              a.results)
    else:
        main(["throughput", "--results", a.results])
        for engine in ("torch", "onnx"):
            for seed in (1, 2, 3):
                main(["returns", "--env", "CartPole-v1", "--engine", engine, "--seed", str(seed), "--results", a.results])
        for engine in ("torch", "onnx"):
            for dist in ("normal", "tanh_normal"):
                main(["returns", "--env", "Pendulum-v1", "--engine", engine, "--seed", "1", "--box-distribution", dist,
                      "--results", a.results])


if __name__ == "__main__":
    sys.exit(main())
