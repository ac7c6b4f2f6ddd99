"""Benchmark: rlexport value estimators (eager and ONNX Runtime) vs TorchRL 0.14.1.

    .venv/bin/python benchmarks/estimators.py [--repeats N] [--threads 1 2]

GAE, TD(lambda) and V-trace at [256,128], [16,2048], [1,100000] (batch, horizon), float32, CPU.
For each thread count the measurements run in a fresh subprocess with ``OMP_NUM_THREADS`` and
``OMP_WAIT_POLICY=PASSIVE`` (``torch.set_num_threads`` and ORT ``intra_op_num_threads`` match).
One ONNX file per estimator (dynamic batch and time, default bound 2**20) serves every size.

Columns (milliseconds, median and min over repeats, all measured in the same process):
  rlexport eager | ORT (session.set_denormal_as_zero=1) | ORT (default session) |
  TorchRL vectorised (vec_*; V-trace has none) | TorchRL loop;
  speed-up = TorchRL fastest median / rlexport eager median; ORT/eager = ORT(DAZ) / eager.

Notes: run-time costs of traced scan forms (``rlexport/value/scan.py``, which now runs every
step unconditionally, for export time: ``benchmarks/export_times.py``; 2-core CPU, torch 2.13,
ORT 1.31, float32, one thread; ms for the bare scan, eager -> ORT): a fixed 17 steps with no branch: 0.26 -> 0.62 at [256,128] (2.4x, the
wasted steps cost full passes); one ``If`` per step: 0.26 -> 0.39 (1.5x) and 1.5 -> 5.9 at
[1,100000] (3.9x, every ``If`` costs); nested ``If`` per step (skip all the rest at once): fast
in ORT but ``torch.onnx.export`` took 250 s at 17 steps; 7 unconditional steps + 2-step blocks:
0.24 -> 0.35, 0.38 -> 0.43, 1.49 -> 2.2 (export ~25 s at 20 steps). Scalars ``gamma``/``lmbda``
enter the graph as ``[1, ..., 1]`` of the input's rank, not 0-d: ORT's CPU ``Mul`` broadcast a
0-d operand over [256, 128, 1] in 380 us, a same-rank one in 35 us.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = [(256, 128), (16, 2048), (1, 100_000)]
ESTIMATORS = ["gae", "td-lambda", "vtrace"]


def _timeit(fn, repeats: int, budget_s: float = 3.0) -> tuple[float, float]:
    fn()  # warm-up
    times = []
    start = time.perf_counter()
    while len(times) < repeats and (len(times) < 3 or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3, min(times) * 1e3


def _worker(threads: int, onnx_dir: Path, repeats: int) -> list[dict]:
    import torch
    import torchrl.objectives.value.functional as R

    from rlexport.models.factory import build_estimator
    from rlexport.models.factory import estimator_example as example_inputs

    torch.set_num_threads(threads)
    rows = []
    for name in ESTIMATORS:
        est = build_estimator(name, gamma=0.99, lmbda=0.95)
        sess_daz = ort_session(onnx_dir / f"{name}.onnx", threads, denormal_as_zero=True)
        sess_def = ort_session(onnx_dir / f"{name}.onnx", threads)
        for b, t in SIZES:
            inp = example_inputs(est, b, t, torch.float32, seed=1)
            r, d, term = inp["next_reward"], inp["next_done"], inp["next_terminated"]
            v, nv = inp["state_value"], inp["next_state_value"]
            if name == "gae":
                vec = lambda: R.vec_generalized_advantage_estimate(0.99, 0.95, v, nv, r, d, term)  # noqa: E731
                loop = lambda: R.generalized_advantage_estimate(0.99, 0.95, v, nv, r, d, term)  # noqa: E731
            elif name == "td-lambda":
                vec = lambda: R.vec_td_lambda_return_estimate(0.99, 0.95, nv, r, d, term)  # noqa: E731
                loop = lambda: R.td_lambda_return_estimate(0.99, 0.95, nv, r, d, term)  # noqa: E731
            else:
                lp, lm = inp["target_log_prob"].unsqueeze(-1), inp["sample_log_prob"].unsqueeze(-1)
                vec = None
                loop = lambda: R.vtrace_advantage_estimate(0.99, lp, lm, v, nv, r, d, term)  # noqa: E731
            row = {"estimator": name, "batch": b, "horizon": t, "threads": threads}
            with torch.no_grad():
                row["eager"] = _timeit(lambda: est(**inp), repeats)
                row["ort_daz"] = _timeit(lambda: run_ort(sess_daz, inp), repeats)
                row["ort"] = _timeit(lambda: run_ort(sess_def, inp), repeats)
                row["torchrl_vec"] = _timeit(vec, repeats) if vec is not None else None
                row["torchrl_loop"] = _timeit(loop, max(3, repeats // 5), budget_s=5.0)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def ort_session(path: Path, threads: int, *, denormal_as_zero: bool = False):
    """A CPU ONNX Runtime session with ``threads`` intra-op threads.

    ``denormal_as_zero=True`` sets ORT's ``session.set_denormal_as_zero``: long horizons multiply
    discounts down into float denormals (< 1e-38 in float32), which makes ORT's kernels slower at
    long horizons (the table's two ORT columns); flushing them changes no result at float32
    precision. It is off by default because ORT sets the flush-to-zero mode of the calling thread.
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    if denormal_as_zero:
        so.add_session_config_entry("session.set_denormal_as_zero", "1")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def run_ort(session, inputs) -> list:
    """One plain ``session.run`` (no per-call checks: the feed is fixed by construction)."""
    return session.run(None, {i.name: inputs[i.name].numpy() for i in session.get_inputs()})


def _fmt(x) -> str:
    return "—" if x is None else f"{x[0]:.2f} / {x[1]:.2f}"


def _table(rows: list[dict]) -> str:
    head = ["estimator", "[B,T]", "thr", "rlexport eager", "ORT (DAZ)", "ORT (default)", "TorchRL vec", "TorchRL loop",
            "speed-up vs TorchRL", "ORT/eager"]
    lines = []
    for r in rows:
        best = min(x[0] for x in (r["torchrl_vec"], r["torchrl_loop"]) if x is not None)
        lines.append([r["estimator"], f"[{r['batch']},{r['horizon']}]", str(r["threads"]), _fmt(r["eager"]),
                      _fmt(r["ort_daz"]), _fmt(r["ort"]), _fmt(r["torchrl_vec"]), _fmt(r["torchrl_loop"]),
                      f"{best / r['eager'][0]:.1f}x", f"{r['ort_daz'][0] / r['eager'][0]:.2f}"])
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(head)]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += ["| " + " | ".join(c.ljust(w) for c, w in zip(line, widths)) + " |" for line in lines]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--onnx-dir", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker is not None:
        print(json.dumps(_worker(args.worker, args.onnx_dir, args.repeats)))
        return

    import torch

    from rlexport.export import export_onnx
    from rlexport.models.factory import build_estimator
    from rlexport.models.factory import estimator_example as example_inputs

    with tempfile.TemporaryDirectory() as tmp:
        onnx_dir = Path(tmp)
        for name in ESTIMATORS:
            t0 = time.perf_counter()
            est = build_estimator(name, gamma=0.99, lmbda=0.95)
            export_onnx(est, example_inputs(est, 4, 64, torch.float32), onnx_dir / f"{name}.onnx")
            print(f"exported {name} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        rows = []
        for threads in args.threads:
            env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"}
            cmd = [sys.executable, __file__, "--worker", str(threads), "--onnx-dir", str(onnx_dir), "--repeats", str(args.repeats)]
            res = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, check=True)
            rows += json.loads(res.stdout.strip().splitlines()[-1])
    rows.sort(key=lambda r: (ESTIMATORS.index(r["estimator"]), r["batch"] * 0 + SIZES.index((r["batch"], r["horizon"])), r["threads"]))
    print(f"torch {torch.__version__}, CPU, float32, OMP_WAIT_POLICY=PASSIVE; ms median / min; "
          f"{os.cpu_count()} logical CPUs")
    print(_table(rows))


if __name__ == "__main__":
    main()
