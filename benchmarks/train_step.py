"""One PPO update step: ONNX Runtime (exported train-step graph) vs eager PyTorch.

Eager step: ``loss(**batch)`` → sum of ``loss_*`` → ``backward`` → ``clip_grad_norm_`` →
``torch.optim.Adam.step`` (``zero_grad(set_to_none=True)`` first). ORT step:
``OnnxTrainer.step(batch)`` — the same computation as one graph, state kept as numpy arrays,
batch given as torch tensors (the conversion is timed too).

Model: the ``mujoco`` preset (17 observations, 6 actions, 2x64 tanh MLPs, IndependentNormal)
with ``ClipPPOLoss`` (advantage and value target as inputs), float32. Batches of 256 and 4096,
intra-op threads 1 and 2 for both runtimes, ``OMP_WAIT_POLICY=PASSIVE``.

Usage: ``python benchmarks/train_step.py [--repeats N] [--batches 256 4096] [--threads 1 2]``
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import torch  # noqa: E402


def build(batch: int, seed: int = 0):
    """ClipPPOLoss of the mujoco preset (IndependentNormal) and a batch with advantages given."""
    from rlexport.models.factory import BuildSpec, build_module

    built = build_module(BuildSpec(preset="mujoco", loss="clip-ppo", batch=batch, seed=seed,
                                   options={"clip_epsilon": 0.2, "entropy_coeff": 0.0}))
    return built.module, built.example


def resample(example, n, seed):
    g = torch.Generator().manual_seed(seed)
    m = next(iter(example.values())).shape[0]
    idx = torch.randint(0, m, (n,), generator=g)
    return {k: v.index_select(0, idx).contiguous() for k, v in example.items()}


def timeit(fn, repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, nargs="+", default=[256, 4096])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=0, help="timed steps per cell (default: 300 at <=1024, 60 above)")
    args = ap.parse_args()

    from rlexport.export.train_step import export_train_step
    from rlexport.runtime.trainer import OnnxTrainer

    hp = {"lr": 3e-4, "eps": 1e-5, "max_grad_norm": 0.5}
    loss, example = build(64)
    tmp = tempfile.mkdtemp(prefix="rlexport-bench-")
    path = os.path.join(tmp, "step.onnx")
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_train_step(loss, example, path, "adam", hyperparams=hp, golden=False)
    export_s = time.perf_counter() - t

    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        trainer = OnnxTrainer(path, threads=threads)
        trainer.load_module(loss)
        params = [p for p in loss.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=hp["lr"], eps=hp["eps"])
        for n in args.batches:
            batch = resample(example, n, seed=n)
            repeats = args.repeats or (300 if n <= 1024 else 60)

            def eager():
                opt.zero_grad(set_to_none=True)
                outs = loss(**batch)
                outs = (outs,) if isinstance(outs, torch.Tensor) else outs  # one output: a bare tensor
                total = sum(o for k, o in zip(loss.out_keys, outs) if k.startswith("loss_"))
                total.backward()
                torch.nn.utils.clip_grad_norm_(params, hp["max_grad_norm"])
                opt.step()

            def ort():
                trainer.step(batch)

            # interleave the two so that machine load affects both alike
            te, to = [], []
            for chunk in range(5):
                te += timeit(eager, repeats // 5, 10 if chunk == 0 else 2)
                to += timeit(ort, repeats // 5, 10 if chunk == 0 else 2)
            rows.append((n, threads, statistics.median(te), min(te), statistics.median(to), min(to)))

    print(f"One ClipPPO + clip_grad_norm_ + Adam update step (mujoco preset, float32), "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, torch {torch.__version__}, "
          f"export {export_s:.1f} s, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print()
    print("| batch | threads | eager median (ms) | eager min (ms) | ORT median (ms) | ORT min (ms) | speed-up (median) |")
    print("|------:|--------:|------------------:|---------------:|----------------:|-------------:|------------------:|")
    for n, th, em, emin, om, omin in rows:
        print(f"| {n} | {th} | {em:.3f} | {emin:.3f} | {om:.3f} | {omin:.3f} | {em / om:.2f}x |")


if __name__ == "__main__":
    main()
