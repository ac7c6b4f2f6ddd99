"""The whole ``rlexport train`` process, phase by phase: the demo (50 000 steps) cold and cached,
and the 500 000-step ONNX-engine run cached (issue 15: the demo <= 15 s, the 500k run <= 40 s).

    python benchmarks/cli_run.py [--runs 3] [--cold-runs 1] [--skip-500k]

Each run is a fresh Python process running the CLI (``rlexport.cli.app.main``, as the
``rlexport`` script does) with its own run folder and a graph cache in a temporary folder:
emptied before every cold run, filled by the cold run (or a first untimed run) before the cached
ones. The child wraps the train path's functions to time its phases:

* ``process`` - interpreter start to exit (the parent's clock);
* ``imports`` - interpreter start to the command starting (typer, then ``rlexport.train``: torch,
  onnx, onnxruntime, gymnasium);
* ``start-up`` - ``Trainer(...)``: the three start-up graphs, the ORT sessions, the environments;
* ``training`` - from the end of start-up to the learning curve;
* ``curve`` - ``learning_curve.png`` (matplotlib);
* ``policy``, ``loss``, ``train_step`` - writing each final artifact (``validation.json``'s
  ``export_seconds``);
* ``validation`` - validating the three artifacts (``validation.json``'s ``validate_seconds``);
* ``rest`` - the process minus all of the above (interpreter start-up, summary, exit).

Seconds, median / min over the runs. One torch thread, one ORT thread (``OMP_NUM_THREADS=1``).
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
marks = {}
import rlexport.cli.app as app
import rlexport.train.loop as loop
marks["imports"] = time.perf_counter() - t0
init = loop.Trainer.__init__
def timed_init(self, *args, **kwargs):
    s = time.perf_counter()
    init(self, *args, **kwargs)
    marks["start-up"] = time.perf_counter() - s
    marks["_trained_from"] = time.perf_counter()
loop.Trainer.__init__ = timed_init
plot = loop.plot_learning_curve
def timed_plot(*args, **kwargs):
    s = time.perf_counter()
    marks["training"] = s - marks.pop("_trained_from")
    out = plot(*args, **kwargs)
    marks["curve"] = time.perf_counter() - s
    return out
loop.plot_learning_curve = timed_plot
sys.argv = ["rlexport", *sys.argv[1:]]
try:
    app.main()
except SystemExit as err:
    if err.code not in (0, None):
        raise
print("MARKS " + json.dumps(marks))
"""

PHASES = ("process", "imports", "start-up", "training", "curve", "policy", "loss", "train_step", "validation", "rest")


def one_run(args: list[str], run_dir: Path, cache: Path) -> dict[str, float]:
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", RLEXPORT_CACHE_DIR=str(cache))
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, *args, "--out", str(run_dir)] if args else
                          [sys.executable, "-c", CHILD, "train"], env=env, capture_output=True, text=True,
                          cwd=run_dir.parent)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("MARKS "))
    marks = {"process": wall, **json.loads(line[6:])}
    if not args:  # the demo names its own run folder under ./runs
        run_dir = max((run_dir.parent / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    doc = json.loads((run_dir / "validation.json").read_text())
    if not doc["passed"]:
        raise SystemExit(f"{run_dir}: validation failed")
    marks.update(doc["export_seconds"])
    marks["validation"] = sum(doc.get("validate_seconds", {}).values())
    marks["rest"] = wall - sum(marks.get(k, 0.0) for k in PHASES if k not in ("process", "rest"))
    return marks


def table(rows: list[tuple[str, list[dict[str, float]]]]) -> str:
    head = f"{'case':<26}{'runs':>5}" + "".join(f"{p:>16}" for p in PHASES)
    lines = [head]
    for name, runs in rows:
        cells = []
        for p in PHASES:
            vals = [r[p] for r in runs if p in r]
            cells.append(f"{statistics.median(vals):7.2f} / {min(vals):5.2f}" if vals else f"{'-':>15}")
        lines.append(f"{name:<26}{len(runs):>5}" + "".join(f"{c:>16}" for c in cells))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="cached runs per case")
    ap.add_argument("--cold-runs", type=int, default=1, help="cold demo runs (empty cache)")
    ap.add_argument("--skip-500k", action="store_true", help="only the demo")
    opts = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rlexport-cli-run-"))
    cache = work / "cache"
    rows = []
    try:
        n = 0

        def fresh_dir() -> Path:
            nonlocal n
            n += 1
            d = work / f"w{n}"
            d.mkdir()
            return d / "run"

        cold = []
        for _ in range(opts.cold_runs):
            shutil.rmtree(cache, ignore_errors=True)
            cold.append(one_run([], fresh_dir(), cache))
        if cold:
            rows.append(("demo, cold (empty cache)", cold))
        else:
            one_run([], fresh_dir(), cache)  # fills the cache
        rows.append(("demo, cached", [one_run([], fresh_dir(), cache) for _ in range(opts.runs)]))
        if not opts.skip_500k:
            big = ["train", "--engine", "onnx", "--total-steps", "500000"]
            # the demo's runs filled the cache: the 500k run's graphs are the same (steps are not in a key)
            rows.append(("500k onnx, cached", [one_run(big, fresh_dir(), cache) for _ in range(opts.runs)]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"rlexport train, whole process, seconds median / min, OMP_NUM_THREADS=1, load {os.getloadavg()[0]:.1f}")
    print(table(rows))


if __name__ == "__main__":
    main()
