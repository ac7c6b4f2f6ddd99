"""A/B in one process: ONNX exports through the one-trace path and through the old two-trace path.

    .venv/bin/python benchmarks/export_one_trace.py [--presets cartpole mujoco]
        [--kinds grad train-step loss gae loss-gae] [--repeats 3] [--threads 1]

**new** is what ``export_onnx`` / ``export_grad`` / ``export_train_step`` do: one ``make_fx``
trace that decomposes with the ONNX exporter's table, wrapped as the program as it is, which
``to_onnx`` translates without the exporter's ``run_decompositions`` re-trace
(``rlexport.export.capture``, ``rlexport.export.onnx.translatable_as_is``). **old** is the path
before it (forward graphs: ``torch.export``; gradient and train-step graphs: ``make_fx`` without
the table, then ``torch.export`` of its graph; then the exporter's full ``_core.export`` with its
decomposition re-trace), selected by patching the table and the check in this process only. Both run alternately after one warm-up export each
(so the process's one-time imports and registry are paid before the first timed row); the table
gives CPU seconds (process time: the steadier figure on a shared machine) and wall seconds, median
and min, and the ONNX node counts of both graphs (the ONNX engine's per-call cost follows them).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["cartpole", "mujoco"])
    parser.add_argument("--kinds", nargs="+", default=["grad", "train-step"],
                        choices=["grad", "train-step", "loss", "gae", "loss-gae"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    import onnx
    import torch

    import rlexport.export.onnx as onnx_mod
    from rlexport.export import export_grad, export_onnx, export_train_step
    from rlexport.models.factory import BuildSpec, build_module

    torch.set_num_threads(args.threads)
    as_is, decompositions = onnx_mod.translatable_as_is, onnx_mod.onnx_decompositions

    def use(path: str) -> None:
        new = path == "new"
        onnx_mod.translatable_as_is = as_is if new else (lambda ep, opset=None: False)
        # grad.py and train_step.py call onnx_decompositions through their own import
        table = decompositions if new else (lambda opset=None: None)
        import rlexport.export.grad as grad_mod
        import rlexport.export.train_step as step_mod

        grad_mod.onnx_decompositions = step_mod.onnx_decompositions = onnx_mod.onnx_decompositions = table

    print(f"ONNX export, one process, old vs new alternately, threads {args.threads}, "
          f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, {args.repeats} runs each (median / min)")
    print("| preset | artifact | old CPU | new CPU | old wall | new wall | old nodes | new nodes |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        counter = iter(range(10_000))
        specs = {"grad": dict(loss="clip-ppo"), "train-step": dict(loss="clip-ppo"), "loss": dict(loss="clip-ppo"),
                 "gae": dict(estimator="gae"), "loss-gae": dict(loss="clip-ppo", estimator="gae")}
        for preset in args.presets:
            for kind in args.kinds:
                built = build_module(BuildSpec(preset=preset, **specs[kind]))

                def export() -> Path:
                    path = Path(tmp) / f"{preset}-{kind}-{next(counter)}.onnx"
                    if kind == "grad":
                        export_grad(built.module, built.example, path)
                    elif kind == "train-step":
                        export_train_step(built.module, built.example, path, optimizer="adam")
                    else:
                        export_onnx(built.module, built.example, path)
                    return path

                cpu: dict[str, list[float]] = {"old": [], "new": []}
                wall: dict[str, list[float]] = {"old": [], "new": []}
                nodes: dict[str, int] = {}
                for path in ("old", "new"):  # warm-up, not timed
                    use(path)
                    nodes[path] = len(onnx.load(str(export())).graph.node)
                for _ in range(args.repeats):
                    for path in ("old", "new"):
                        use(path)
                        t0, c0 = time.perf_counter(), time.process_time()
                        export()
                        wall[path].append(time.perf_counter() - t0)
                        cpu[path].append(time.process_time() - c0)

                def cell(values: list[float]) -> str:
                    return f"{statistics.median(values):.2f} / {min(values):.2f}"

                print(f"| {preset} | {kind} | {cell(cpu['old'])} | {cell(cpu['new'])} | {cell(wall['old'])} | "
                      f"{cell(wall['new'])} | {nodes['old']} | {nodes['new']} |", flush=True)
    use("new")


if __name__ == "__main__":
    main()
