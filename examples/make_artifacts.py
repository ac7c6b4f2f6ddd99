"""Export the artifacts that the Node.js and C++ examples run, each with its golden sample.

    python examples/make_artifacts.py [--out examples/artifacts] [--only NAME ...]

Writes, with the public rlexport API only (every exporter verifies its artifact and writes
``X.json`` and ``X.golden/`` beside it):

==================  ===========================  ============================================
name                file                         what
==================  ===========================  ============================================
train_step_onnx     ppo_train_step.onnx          ClipPPO + Adam update step (cartpole preset),
                                                 golden: K successive steps
loss_onnx           ppo_loss.onnx                ClipPPO loss (forward)
gae_onnx            gae.onnx                     GAE, exported at T=16; golden at other T
gae_onnx_float64    gae_f64.onnx                 the same in float64 (tolerances 1e-7/1e-9)
loss_aoti           ppo_loss_aoti.pt2            ClipPPO loss, AOTInductor package (this CPU
                                                 and torch version only: rebuild per CI run)
torchscript         ppo_loss_ts.pt               ClipPPO loss, TorchScript
==================  ===========================  ============================================

and ``manifest.json`` naming each golden directory, which the consumers read.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP (2-core CI VMs)

import torch  # noqa: E402

HERE = Path(__file__).resolve().parent
BATCH = 16
GAE_EXPORT_T = 16
GAE_MAX_STEPS = 7  # the graph serves T <= 2**7 (NaN beyond): fewer If blocks, faster export
TRAIN_STEPS = 4  # K recorded update steps in the train-step golden sample


def ppo_loss():
    """ClipPPOLoss of the cartpole preset and a batch with advantages given (GAE is its own graph)."""
    from rlexport.models.factory import BuildSpec, build_module

    built = build_module(BuildSpec(preset="cartpole", loss="clip-ppo", batch=BATCH, seed=1,
                                   options={"clip_epsilon": 0.2, "entropy_coeff": 0.01}))
    return built.module, built.example


def gae_example(batch: int, horizon: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    done = torch.rand(batch, horizon, 1, generator=g) < 0.1
    return {
        "next_reward": torch.randn(batch, horizon, 1, generator=g),
        "next_done": done,
        "next_terminated": done & (torch.rand(batch, horizon, 1, generator=g) < 0.5),
        "state_value": torch.randn(batch, horizon, 1, generator=g),
        "next_state_value": torch.randn(batch, horizon, 1, generator=g),
    }


def golden_of(path: Path) -> str:
    return path.with_suffix(".golden").name


def make_train_step_onnx(out: Path) -> dict:
    from rlexport.export.train_step import export_train_step

    loss, example = ppo_loss()
    path = out / "ppo_train_step.onnx"
    export_train_step(loss, example, path, optimizer="adam", golden_steps=TRAIN_STEPS)
    return {"artifact": path.name, "golden": golden_of(path)}


def make_loss_onnx(out: Path) -> dict:
    from rlexport.export import export_onnx

    loss, example = ppo_loss()
    path = export_onnx(loss, example, out / "ppo_loss.onnx")
    return {"artifact": path.name, "golden": golden_of(path)}


def make_gae_onnx(out: Path, dtype: torch.dtype = torch.float32, name: str = "gae.onnx") -> dict:
    from rlexport.export import export_onnx, read_golden
    from rlexport.value import GAE

    gae = GAE(gamma=0.99, lmbda=0.95, max_steps=GAE_MAX_STEPS)
    path = export_onnx(gae, gae_example(4, GAE_EXPORT_T), out / name, dtype=dtype)
    horizons = sorted({c.inputs["next_reward"].shape[-2] for c in read_golden(path.with_suffix(".golden")).cases})
    if set(horizons) <= {GAE_EXPORT_T}:
        raise SystemExit(f"gae.golden only holds the export horizon T={GAE_EXPORT_T}; the check needs another")
    return {"artifact": path.name, "golden": golden_of(path), "export_horizon": GAE_EXPORT_T, "golden_horizons": horizons}


def make_gae_onnx_float64(out: Path) -> dict:
    return make_gae_onnx(out, torch.float64, "gae_f64.onnx")


def make_loss_aoti(out: Path) -> dict:
    from rlexport.export import export_aoti

    loss, example = ppo_loss()
    path = export_aoti(loss, example, out / "ppo_loss_aoti.pt2")
    return {"artifact": path.name, "golden": golden_of(path), "torch_version": torch.__version__}


def make_torchscript(out: Path) -> dict:
    from rlexport.export import export_torchscript

    loss, example = ppo_loss()
    path = export_torchscript(loss, example, out / "ppo_loss_ts.pt")
    return {"artifact": path.name, "golden": golden_of(path)}


MAKERS = {
    "train_step_onnx": make_train_step_onnx,
    "loss_onnx": make_loss_onnx,
    "gae_onnx": make_gae_onnx,
    "gae_onnx_float64": make_gae_onnx_float64,
    "loss_aoti": make_loss_aoti,
    "torchscript": make_torchscript,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE / "artifacts", help="output directory (default: examples/artifacts)")
    ap.add_argument("--only", nargs="+", choices=list(MAKERS), help="make only these (the manifest keeps the others)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    out: Path = args.out.resolve()
    names = args.only or list(MAKERS)
    if not args.only and out.exists():
        # Never run consumers against artifacts of an earlier run; but only ever delete a
        # directory this script made (it holds our manifest) or an empty one.
        if (out / "manifest.json").is_file():
            shutil.rmtree(out)
        elif any(out.iterdir()):
            raise SystemExit(f"{out} is not empty and holds no manifest.json: choose another --out")
    out.mkdir(parents=True, exist_ok=True)

    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest.update({"format": "rlexport-examples", "version": 1, "torch_version": torch.__version__})
    manifest.setdefault("artifacts", {})
    for name in names:
        manifest["artifacts"].pop(name, None)
        t0 = time.perf_counter()
        entry = MAKERS[name](out)
        entry["export_s"] = round(time.perf_counter() - t0, 2)
        manifest["artifacts"][name] = entry
        print(f"  {name:16s} {entry['artifact']:24s} {entry['export_s']:6.1f} s", flush=True)
        manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
