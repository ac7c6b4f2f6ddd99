"""Start-up of ``rlexport train --engine onnx``: cold (empty graph cache) vs cached (the same
configuration exported before), CartPole-v1 PPO with the default settings.

    python benchmarks/startup.py [--cold 2] [--cached 5]

Each run is a fresh Python process training one update (512 steps, no final export) with its
own run folder; the graph cache is a temporary folder (emptied before every cold run, filled by
a first run before the cached ones). Columns, per case (median / min over the runs):

* ``process`` - the whole process, interpreter start to exit;
* ``imports`` - importing ``rlexport.train`` (torch, onnx, onnxruntime, gymnasium);
* ``engine start-up`` - ``Trainer(...)``: the three ONNX graphs (exported, or fetched from the
  cache and checked), the ONNX Runtime sessions, the environments;
* ``to first update`` - interpreter start to the end of the first update (start-up + one
  512-step rollout and its update).

A last row times a process that only imports torch, onnx, onnxruntime and gymnasium: the floor
under ``imports`` that no cache removes.

One torch thread, one ORT thread (``OMP_NUM_THREADS=1``, ``OMP_WAIT_POLICY=PASSIVE``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from rlexport.artifact.cache import GraphCache
from rlexport.train import loop, make_config, train
t1 = time.perf_counter()
marks = {"imports": t1 - t0}
init = loop.Trainer.__init__
def timed(self, *args, **kwargs):
    s = time.perf_counter()
    init(self, *args, **kwargs)
    marks["engine start-up"] = time.perf_counter() - s
loop.Trainer.__init__ = timed
def on_update(trainer, row):
    marks.setdefault("to first update", time.perf_counter() - t0)
cfg = make_config("ppo", "CartPole-v1", engine="onnx", total_steps=512, export_artifacts=False, out=sys.argv[1])
train(cfg, cache=GraphCache(sys.argv[2]), on_update=on_update)
print("MARKS " + json.dumps(marks))
"""

COLUMNS = ("process", "imports", "engine start-up", "to first update")
FLOOR = "import time; t = time.perf_counter(); import torch, onnx, onnxruntime, gymnasium; print(time.perf_counter() - t)"


def one_run(workdir: Path, cache: Path, index: int) -> dict[str, float]:
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, str(workdir / f"run{index}"), str(cache)], env=env,
                         capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - t
    marks = json.loads(next(line for line in out.splitlines() if line.startswith("MARKS "))[6:])
    return {"process": wall, **marks}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cold", type=int, default=2, help="cold runs (each exports the three graphs)")
    ap.add_argument("--cached", type=int, default=5, help="cached runs")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rlexport-startup-"))
    cache = work / "cache"
    results: dict[str, list[dict[str, float]]] = {"cold (empty cache)": [], "cached (same configuration)": []}
    try:
        n = 0
        for _ in range(args.cold):
            shutil.rmtree(cache, ignore_errors=True)
            results["cold (empty cache)"].append(one_run(work, cache, n))
            n += 1
        if not args.cold:
            one_run(work, cache, n)  # fill the cache
            n += 1
        for _ in range(args.cached):
            results["cached (same configuration)"].append(one_run(work, cache, n))
            n += 1
        floor = []
        for _ in range(max(args.cached, 1)):
            t = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", FLOOR], env=dict(os.environ, OMP_NUM_THREADS="1"),
                                 capture_output=True, text=True, check=True).stdout
            floor.append({"process": time.perf_counter() - t, "imports": float(out)})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"rlexport train --engine onnx start-up, CartPole-v1 PPO defaults, 1 thread, {os.cpu_count()} cores; "
          "seconds, median / min")
    print("| case | runs | " + " | ".join(COLUMNS) + " |")
    print("|---|---:|" + "---:|" * len(COLUMNS))
    for case, runs in results.items():
        if not runs:
            continue
        cells = [f"{statistics.median(r[c] for r in runs):.2f} / {min(r[c] for r in runs):.2f}" for c in COLUMNS]
        print(f"| {case} | {len(runs)} | " + " | ".join(cells) + " |")
    cells = [f"{statistics.median(r[c] for r in floor):.2f} / {min(r[c] for r in floor):.2f}" for c in COLUMNS[:2]]
    print(f"| imports of torch, onnx, onnxruntime, gymnasium only | {len(floor)} | " + " | ".join(cells) + " | - | - |")


if __name__ == "__main__":
    main()
