"""Benchmark: how long each preset export takes, cold, and where the time goes.

    .venv/bin/python benchmarks/export_times.py [--presets cartpole pendulum mujoco]
        [--kinds loss loss-gae gae td-lambda vtrace grad train-step act advantage]
        [--formats onnx pt2] [--repeats 3] [--threads 1] [--phases] [--json out.json]

Every (preset, artifact kind, format) runs in a fresh Python process (``--repeats`` processes):
the process imports rlexport and builds the module and its example (not timed), then makes the
export exactly as the CLI does - capture, conversion, golden sample, verification, atomic write
(timed: **cold**, which includes torch's and onnxscript's one-time lazy imports and registries on
the first export of a process) - and then the same export again in the same process (**warm**: what
is left once those one-time costs are paid, e.g. the second and third graph of ``rlexport train``).
Columns: seconds, median / min over the processes, wall and CPU time (the process's user + system
time: the steadier figure when other jobs share the machine). ``OMP_NUM_THREADS``, ``torch.set_num_threads``
and ``OMP_WAIT_POLICY=PASSIVE`` are set per process.

Artifact kinds (the presets' networks, the factory the CLI uses, ``rlexport/models/factory.py``):
``loss`` clip-PPO forward loss (advantage given), ``loss-gae`` clip-PPO with in-graph GAE
(dynamic batch and time), ``gae``/``td-lambda``/``vtrace`` the estimator with the preset's value
network (dynamic batch and time, default bound), ``grad`` the clip-PPO gradient graph,
``train-step`` clip-PPO + clip_grad_norm_ + Adam, ``act`` and ``advantage`` the acting and
advantage graphs of ``rlexport train --engine onnx`` / ``rlexport bundle`` (parameters as inputs,
static shapes; CartPole-v1 / Pendulum-v1 configurations, no mujoco environment).

``--phases`` breaks the cold export into phases (exclusive seconds; nested phases are not counted
twice): plan (casting copies, eager forward), make_fx (autograd graphs), torch.export (with the
number of calls: more than one per capture is a dynamic-shape retry), the exporter's ATen -> ONNX
registry (built once per process since this work; ``torch.onnx.export`` rebuilt it per call), ONNX
translation (decompositions and translation, less the rest), ONNX optimisation (onnxscript's optimizer), onnx.checker,
golden reference (float64 eager + conditioning runs), writing, ORT session creation, verification
(running the golden cases), and the rest.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

PRESETS = ["cartpole", "pendulum", "mujoco"]
KINDS = ["loss", "loss-gae", "gae", "td-lambda", "vtrace", "grad", "train-step", "act", "advantage"]
FORWARD_KINDS = {"loss", "loss-gae", "gae", "td-lambda", "vtrace", "act", "advantage"}
TRAIN_ENV = {"cartpole": "CartPole-v1", "pendulum": "Pendulum-v1"}
PHASES = ["plan", "make_fx", "torch.export", "onnx registry", "onnx translate", "onnx optimise", "onnx.checker", "golden reference",
          "write", "ort session", "verify", "other"]


# ----------------------------------------------------------------------------- phase timers (worker)


class PhaseClock:
    """Exclusive time per phase: a phase entered inside another is taken out of the outer one."""

    def __init__(self):
        self.totals: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.stack: list[list] = []

    def wrap(self, phase: str, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            self.calls[phase] += 1
            frame = [phase, time.perf_counter(), 0.0]
            self.stack.append(frame)
            try:
                return fn(*args, **kwargs)
            finally:
                self.stack.pop()
                spent = time.perf_counter() - frame[1]
                self.totals[phase] += spent - frame[2]
                if self.stack:
                    self.stack[-1][2] += spent
        return timed

    def patch(self, owner, name: str, phase: str):
        setattr(owner, name, self.wrap(phase, getattr(owner, name)))

    def reset(self):
        self.totals.clear()
        self.calls.clear()


def install_clock(clock: PhaseClock) -> None:
    import onnx
    import onnxruntime as ort
    import torch
    from torch.onnx._internal.exporter import _onnx_program, _registration

    import rlexport.artifact.golden as golden_mod
    import rlexport.export.capture as capture
    import rlexport.export.grad as grad
    import rlexport.export.onnx as onnx_mod
    import rlexport.export.plan as plan
    import rlexport.export.program as program
    import rlexport.export.train_step as train_step
    import rlexport.export.write as write
    import rlexport.runtime.onnx as rt_onnx

    clock.patch(torch.export, "export", "torch.export")
    clock.patch(torch.export, "save", "write")
    make_fx = capture.make_fx
    # make_fx(fn, ...) returns the tracer; the tracing happens when that is called
    capture.make_fx = lambda *a, **k: clock.wrap("make_fx", make_fx(*a, **k))
    clock.patch(torch.onnx, "export", "onnx translate")
    clock.patch(onnx_mod, "_onnx_program", "onnx translate")
    registry = _registration.ONNXRegistry
    registry.from_torchlib = classmethod(clock.wrap("onnx registry", registry.from_torchlib.__func__))
    clock.patch(_onnx_program.ONNXProgram, "optimize", "onnx optimise")
    clock.patch(onnx.checker, "check_model", "onnx.checker")
    for mod in (onnx_mod, program):
        clock.patch(mod, "plan_export", "plan")
    for mod in (grad, train_step):
        clock.patch(mod, "functional_loss", "plan")
    clock.patch(plan.ExportPlan, "golden", "golden reference")
    clock.patch(grad, "grad_golden", "golden reference")
    clock.patch(train_step, "train_step_golden", "golden reference")
    clock.patch(write, "write_golden", "write")
    clock.patch(golden_mod, "write_golden", "write")
    for mod in (onnx_mod, grad, train_step):
        clock.patch(mod, "save_onnx", "write")
    clock.patch(write, "check_against_golden", "verify")

    session_cls = ort.InferenceSession
    timed_init = clock.wrap("ort session", session_cls.__init__)
    rt_onnx.ort.InferenceSession.__init__ = timed_init


# ----------------------------------------------------------------------------- one export (worker)


def make_job(preset: str, kind: str, fmt: str, out_dir: Path):
    """``(callable that exports once to a fresh path)`` for one table row; the module and example
    are built here, outside the timed call."""
    import numpy as np
    import torch

    from rlexport.export import export_grad, export_onnx, export_program, export_train_step
    from rlexport.models.factory import BuildSpec, build_module

    counter = iter(range(1000))

    def path(suffix: str) -> Path:
        return out_dir / f"{preset}-{kind}-{next(counter)}{suffix}"

    if kind in ("act", "advantage"):
        from rlexport.train.agent import AgentSpec, build_agent
        from rlexport.train.bundle import ActWithValue
        from rlexport.train.config import TrainConfig
        from rlexport.train.engines import GaeModule, WithParams, build_loss, loss_networks
        from rlexport.train.envs import describe_spaces

        cfg = TrainConfig(env_id=TRAIN_ENV[preset])
        obs_space, act_space = describe_spaces(cfg.env_id)
        spec = AgentSpec(int(obs_space.shape[0]), act_space, cfg.box_distribution)
        actor, critic = build_agent(spec, cfg.hidden, cfg.seed)
        actor, critic = loss_networks(build_loss(cfg, actor, critic), actor, critic)
        rng = np.random.default_rng(0)
        E, T, D = cfg.num_envs, cfg.num_steps, spec.obs_dim
        if kind == "act":
            module = ActWithValue(actor, critic, spec.kind)
            example = {"observation": rng.standard_normal((E, D)).astype(np.float32),
                       "noise": spec.draw_noise(rng, E)}
        else:
            module = GaeModule(critic, cfg.gamma, cfg.gae_lambda)
            done = rng.random((E, T, 1)) < 0.1
            example = {"observation": rng.standard_normal((E, T, D)).astype(np.float32),
                       "next_observation": rng.standard_normal((E, T, D)).astype(np.float32),
                       "next_reward": rng.standard_normal((E, T, 1)).astype(np.float32),
                       "next_done": done, "next_terminated": done & (rng.random((E, T, 1)) < 0.5)}
        wrapper = WithParams(module).eval()
        ex = {**wrapper.example_params(), **{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in example.items()}}
        exporter = export_onnx if fmt == "onnx" else export_program
        return lambda: exporter(wrapper, ex, path(f".{fmt}"), dynamic=False)

    spec = {
        "loss": dict(loss="clip-ppo"), "loss-gae": dict(loss="clip-ppo", estimator="gae"),
        "gae": dict(estimator="gae"), "td-lambda": dict(estimator="td-lambda"), "vtrace": dict(estimator="vtrace"),
        "grad": dict(loss="clip-ppo"), "train-step": dict(loss="clip-ppo"),
    }[kind]
    built = build_module(BuildSpec(preset=preset, **spec))
    if kind == "grad":
        return lambda: export_grad(built.module, built.example, path(".onnx"))
    if kind == "train-step":
        return lambda: export_train_step(built.module, built.example, path(".onnx"), optimizer="adam")
    exporter = export_onnx if fmt == "onnx" else export_program
    return lambda: exporter(built.module, built.example, path(f".{fmt}"))


def worker(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    clock = PhaseClock()
    if args.phases:
        install_clock(clock)
    with tempfile.TemporaryDirectory() as tmp:
        job = make_job(args.preset, args.kind, args.format, Path(tmp))
        clock.reset()
        t0, c0 = time.perf_counter(), time.process_time()
        job()
        cold, cold_cpu = time.perf_counter() - t0, time.process_time() - c0
        phases = dict(clock.totals)
        calls = dict(clock.calls)
        t0, c0 = time.perf_counter(), time.process_time()
        job()
        warm, warm_cpu = time.perf_counter() - t0, time.process_time() - c0
    if args.phases:
        phases["other"] = cold - sum(phases.values())
    print(json.dumps({"cold": cold, "warm": warm, "cold_cpu": cold_cpu, "warm_cpu": warm_cpu, "phases": phases,
                      "calls": calls}))


# ----------------------------------------------------------------------------- driver


def run_one(preset: str, kind: str, fmt: str, threads: int, phases: bool) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_WAIT_POLICY="PASSIVE")
    cmd = [sys.executable, __file__, "--worker", "--preset", preset, "--kind", kind, "--format", fmt,
           "--threads", str(threads)] + (["--phases"] if phases else [])
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": tail[:300]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rows_to_run(args) -> list[tuple[str, str, str]]:
    rows = []
    for preset in args.presets:
        for kind in args.kinds:
            if kind in ("act", "advantage") and preset not in TRAIN_ENV:
                continue
            for fmt in args.formats:
                if fmt == "pt2" and kind not in FORWARD_KINDS:
                    continue  # gradient and train-step graphs are ONNX (or AOTInductor) only
                rows.append((preset, kind, fmt))
    return rows


def fmt_pair(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} / {min(values):.2f}" if values else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=PRESETS, choices=PRESETS)
    parser.add_argument("--kinds", nargs="+", default=KINDS, choices=KINDS)
    parser.add_argument("--formats", nargs="+", default=["onnx"], choices=["onnx", "pt2"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--phases", action="store_true", help="break the cold export into phases")
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--preset", help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    parser.add_argument("--format", default="onnx", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    results = []
    print(f"export times, seconds (median / min over {args.repeats} fresh processes), threads {args.threads}, "
          "OMP_WAIT_POLICY=PASSIVE", flush=True)
    header = ("| preset | artifact | format | threads | cold wall | cold CPU | warm wall (2nd export, same process) "
              "| warm CPU |")
    lines = [header, "|---|---|---|---:|---:|---:|---:|---:|"]
    print(header, flush=True)
    for preset, kind, fmt in rows_to_run(args):
        runs = [run_one(preset, kind, fmt, args.threads, args.phases) for _ in range(args.repeats)]
        ok = [r for r in runs if "error" not in r]
        errors = [r["error"] for r in runs if "error" in r]
        cells = [fmt_pair([r[key] for r in ok]) for key in ("cold", "cold_cpu", "warm", "warm_cpu")]
        row = f"| {preset} | {kind} | {fmt} | {args.threads} | " + " | ".join(cells) + " |"
        if errors:
            row += f" error: {errors[0]}"
        print(row, flush=True)
        lines.append(row)
        results.append({"preset": preset, "kind": kind, "format": fmt, "threads": args.threads, "runs": runs})
        if args.phases and ok:
            for phase in PHASES:
                values = [r["phases"].get(phase, 0.0) for r in ok]
                calls = [r["calls"].get(phase, 0) for r in ok]
                if max(values) >= 0.005 or phase == "torch.export":
                    extra = f" ({max(calls)} calls)" if phase in ("torch.export", "ort session") else ""
                    print(f"    {phase:<17} {fmt_pair(values)}{extra}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
