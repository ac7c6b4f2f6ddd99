"""The ONNX engine's train-step graph: node counts and per-call CPU time (issue 15).

    python benchmarks/train_step_graph.py [--against DIR ...] [--repeats 15] [--calls 200]

Exports the graph the ONNX engine runs for CartPole-v1 PPO with CleanRL's settings (a minibatch
of 128, ``rlexport.train.engines.export_train_step_graph``'s options) into a temporary folder,
then prints its node count as saved and as ONNX Runtime runs it (level ``all``), and the CPU
time of one call (1 ORT thread, the golden sample's first step as the feed), median and min over
``--repeats`` rounds of ``--calls`` calls. ``--against DIR`` adds other ``train_step.onnx``
artifact folders (e.g. one saved from an older commit) and times every graph interleaved, round
by round, so that the ratios are side by side under the same machine load.
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

import numpy as np  # noqa: E402


def export_engine_train_step(dest: Path) -> Path:
    """The CartPole PPO train step exactly as the ONNX engine exports it (no cache)."""
    from rlexport.train import make_config
    from rlexport.train.agent import AgentSpec, build_agent
    from rlexport.train.engines import build_loss, export_train_step_graph, loss_inputs
    from rlexport.train.envs import describe_spaces
    from rlexport.train.loop import Trainer

    cfg = make_config("ppo", "CartPole-v1", engine="onnx")
    trainer = Trainer.__new__(Trainer)  # only its example minibatch is used: no environment, no engine
    obs_space, act_space = describe_spaces(cfg.env_id)
    trainer.cfg, trainer.spec = cfg, AgentSpec(int(obs_space.shape[0]), act_space, cfg.box_distribution)
    actor, critic = build_agent(trainer.spec, cfg.hidden, cfg.seed)
    loss = build_loss(cfg, actor, critic)
    mb = trainer._example_minibatch()
    export_train_step_graph(loss, {k: mb[k] for k in loss_inputs(loss, cfg, trainer.spec)}, dest / "train_step.onnx", cfg)
    return dest


def node_counts(folder: Path) -> tuple[int, int, collections.Counter]:
    """``(nodes saved, nodes ORT runs at level all, op histogram of the latter)``."""
    import onnx
    import onnxruntime as ort

    saved = len(onnx.load(str(folder / "train_step.onnx")).graph.node)
    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.optimized_model_filepath = os.path.join(tmp, "opt.onnx")
        opts.log_severity_level = 3
        ort.InferenceSession(str(folder / "train_step.onnx"), opts, providers=["CPUExecutionProvider"])
        ops = collections.Counter(n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node)
    return saved, sum(ops.values()), ops


def call_times(folders: list[Path], repeats: int, calls: int) -> list[list[float]]:
    """Per folder, ``repeats`` CPU-time means of one ``session.run`` (us), interleaved."""
    from rlexport.artifact.golden import read_golden
    from rlexport.runtime.onnx import make_session

    runs = []
    for folder in folders:
        golden = read_golden(folder / "train_step.golden")
        feed = {**golden.initial_state, **golden.cases[0].inputs}
        sess = make_session(folder / "train_step.onnx", "cpu", threads=1)
        feed = {i.name: np.asarray(feed[i.name]) for i in sess.get_inputs()}
        for _ in range(50):
            sess.run(None, feed)
        runs.append((sess, feed))
    out: list[list[float]] = [[] for _ in folders]
    for _ in range(repeats):
        for times, (sess, feed) in zip(out, runs):
            t = time.process_time()
            for _ in range(calls):
                sess.run(None, feed)
            times.append((time.process_time() - t) / calls * 1e6)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--against", type=Path, nargs="*", default=[], help="other train_step artifact folders")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--calls", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        current = export_engine_train_step(Path(tmp))
        print(f"exported the engine's train step in {time.perf_counter() - t:.1f} s")
        folders = [current, *args.against]
        labels = ["this checkout", *map(str, args.against)]
        times = call_times(folders, args.repeats, args.calls)
        print(f"1 ORT thread, CPU time per call, {args.repeats} rounds x {args.calls} calls, interleaved")
        print(f"{'graph':<40} {'nodes':>6} {'ORT runs':>8} {'median us':>10} {'min us':>8}")
        for label, folder, ts in zip(labels, folders, times):
            saved, executed, _ = node_counts(folder)
            print(f"{label[-40:]:<40} {saved:>6} {executed:>8} {statistics.median(ts):>10.1f} {min(ts):>8.1f}")
        _, _, ops = node_counts(current)
        print("ops ORT runs (this checkout):", ", ".join(f"{op} {n}" for op, n in ops.most_common()))


if __name__ == "__main__":
    main()
