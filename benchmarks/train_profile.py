"""Where the milliseconds of one ``rlexport train`` update cycle go (per 512 environment steps).

    python benchmarks/train_profile.py [--engine onnx|torch] [--updates 40] [--env CartPole-v1]

Runs the real ``rlexport.train.train`` loop (CartPole-v1 PPO, CleanRL's settings: 4 envs x 128
steps = 512 steps per update, 4 epochs x 4 minibatches = 16 train steps), with a timer around
every phase, each patched in at class level so the loop itself is unchanged:

* ``noise``      ``AgentSpec.draw_noise`` (numpy generator, once per rollout)
* ``act``        ``engine.act`` (ORT session / eager sampler, once per env step)
* ``env``        the vector env's ``step`` (once per env step)
* ``collect``    the rest of ``Trainer.collect`` (buffer writes, final observations, episode
                 bookkeeping, normalisers)
* ``gae``        ``engine.gae`` (critic on both observations + GAE, once per update)
* ``minibatch``  the rest of ``Trainer.learn`` (flattening, permutations, indexing, averaging)
* ``train step`` ``engine.update`` (loss + grads + clip + Adam; 16 per update)
* ``logging``    ``MetricsLogger`` (episodes.csv, metrics.csv, flush, TensorBoard when present)
* ``checkpoint`` ``Trainer.checkpoint``
* ``loop``       whatever else the update loop spends (the row, the callback, the clock)

The first ``--warmup`` updates are not counted. Start-up (engine construction, i.e. the ONNX
exports) is timed separately. One torch thread, one ORT thread, ``OMP_WAIT_POLICY=PASSIVE``.
Prints the median and the minimum over the counted updates, per phase.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import collections  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

PHASES = ("noise", "act", "env", "collect", "gae", "minibatch", "train step", "logging", "checkpoint", "loop")


class _Clock:
    """Accumulates seconds per phase; ``wrap`` replaces ``owner.name`` by a timed version."""

    def __init__(self):
        self.acc: dict[str, float] = collections.defaultdict(float)
        self.calls: dict[str, int] = collections.defaultdict(int)
        self.saved: list[tuple[object, str, object]] = []

    def wrap(self, owner, name: str, phase: str) -> None:
        original = owner.__dict__[name]
        acc, calls = self.acc, self.calls

        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                acc[phase] += time.perf_counter() - t
                calls[phase] += 1

        self.saved.append((owner, name, original))
        setattr(owner, name, timed)

    def restore(self) -> None:
        for owner, name, original in reversed(self.saved):
            setattr(owner, name, original)
        self.saved.clear()


def profile(engine: str = "onnx", updates: int = 40, warmup: int = 3, env_id: str = "CartPole-v1", seed: int = 1,
            **overrides):
    """``(per_update: list[dict[phase, seconds]], startup_s, steps_per_update)``."""
    from rlexport.train import loop, make_config
    from rlexport.train import agent as agent_mod
    from rlexport.train import engines, envs, metrics

    clock = _Clock()
    eng_cls = engines.OnnxEngine if engine == "onnx" else engines.TorchEngine
    clock.wrap(agent_mod.AgentSpec, "draw_noise", "noise")
    clock.wrap(eng_cls, "act", "act")
    clock.wrap(eng_cls, "gae", "gae")
    clock.wrap(eng_cls, "update", "train step")
    for cls in envs.vector_env_classes():
        clock.wrap(cls, "step", "env")
    clock.wrap(loop.Trainer, "collect", "collect total")
    clock.wrap(loop.Trainer, "learn", "learn total")
    clock.wrap(loop.Trainer, "checkpoint", "checkpoint")
    for name in ("update", "flush"):
        clock.wrap(metrics.MetricsLogger, name, "logging")
    clock.wrap(metrics.MetricsLogger, "episode", "episode log")  # called inside collect
    clock.wrap(loop.Trainer, "__init__", "startup")

    per_update: list[dict[str, float]] = []
    last = {"t": 0.0, "acc": {}}

    def on_update(trainer, row):
        now = time.perf_counter()
        acc = dict(clock.acc)
        if last["t"]:
            d = {k: acc.get(k, 0.0) - last["acc"].get(k, 0.0) for k in acc}
            d["cycle"] = now - last["t"]
            per_update.append(d)
        last["t"], last["acc"] = now, acc

    steps = (warmup + updates + 1) * 512
    try:
        with tempfile.TemporaryDirectory(prefix="rlexport-profile-") as tmp:
            cfg = make_config("ppo", env_id, engine=engine, seed=seed, total_steps=steps, out=str(Path(tmp) / "run"),
                              export_artifacts=False, **overrides)
            loop.train(cfg, on_update=on_update)
            startup = clock.acc["startup"]
            spu = cfg.batch_size
    finally:
        clock.restore()
    rows = []
    for d in per_update[warmup:]:
        r = {p: d.get(p, 0.0) for p in ("noise", "act", "env", "gae", "train step", "logging", "checkpoint")}
        episode_log = d.get("episode log", 0.0)
        r["collect"] = d.get("collect total", 0.0) - r["noise"] - r["act"] - r["env"] - episode_log
        r["logging"] += episode_log
        r["minibatch"] = d.get("learn total", 0.0) - r["gae"] - r["train step"]
        r["loop"] = d["cycle"] - d.get("collect total", 0.0) - d.get("learn total", 0.0) - r["logging"] - r["checkpoint"]
        r["cycle"] = d["cycle"]
        rows.append(r)
    return rows, startup, spu


def print_table(rows, startup: float, steps_per_update: int, title: str) -> None:
    scale = 512 / steps_per_update * 1e3  # ms per 512 env steps
    cycle = statistics.median(r["cycle"] for r in rows) * scale
    print(f"\n{title}: {len(rows)} updates counted, ms per 512 env steps (1 torch thread, 1 ORT thread)")
    print(f"{'phase':<12}{'median':>9}{'min':>9}{'share':>8}")
    for p in PHASES:
        vals = [r[p] * scale for r in rows]
        med = statistics.median(vals)
        print(f"{p:<12}{med:>9.2f}{min(vals):>9.2f}{med / cycle:>8.0%}")
    vals = [r["cycle"] * scale for r in rows]
    print(f"{'cycle':<12}{statistics.median(vals):>9.2f}{min(vals):>9.2f}{'':>8}")
    print(f"steps/s while training: median {512e3 / statistics.median(vals):.0f}, best {512e3 / min(vals):.0f}; "
          f"start-up {startup:.1f} s")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engine", default="onnx", choices=["onnx", "torch", "both"])
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--updates", type=int, default=40)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--vector-env", default=None, choices=["sync", "native", "fast"],
                   help="force the vector env (default: the config's auto)")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    overrides = {} if a.vector_env is None else {"vector_env": a.vector_env}
    for engine in (("onnx", "torch") if a.engine == "both" else (a.engine,)):
        rows, startup, spu = profile(engine, a.updates, a.warmup, a.env, **overrides)
        print_table(rows, startup, spu, f"{a.env} PPO, {engine} engine")


if __name__ == "__main__":
    main()
