"""The README's main job: a short CartPole-v1 PPO run ending in exported, validated artifacts.

``rlexport train`` with no options and ``rlexport.train.run_demo(out_dir)`` both run it: 50k
environment steps with CleanRL's PPO settings on the ONNX engine (acting, GAE and every clip+Adam
update in ONNX Runtime), then ``artifacts/`` (policy, loss, train step with golden samples) and
``validation.json``. The first run of the configuration exports the start-up graphs and the final
artifacts' templates; later runs take them from the graph cache (wall times: the README's Training
section, ``benchmarks/cli_run.py``).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from .config import TrainConfig, make_config
from .loop import train

DEMO_STEPS = 50_000
DEMO_ENGINE = "onnx"


def demo_config(out_dir: str | Path | None = None, engine: str = DEMO_ENGINE, total_steps: int = DEMO_STEPS) -> TrainConfig:
    if out_dir is None:
        out_dir = Path("runs") / f"demo-CartPole-v1-ppo-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    return make_config("ppo", "CartPole-v1", engine=engine, total_steps=total_steps, seed=1, out=str(out_dir))


def run_demo(out_dir: str | Path | None = None, *, engine: str = DEMO_ENGINE, total_steps: int = DEMO_STEPS,
             on_update=None):
    """Train, export and validate; returns the ``TrainResult`` (``.validation_passed``)."""

    return train(demo_config(out_dir, engine, total_steps), on_update=on_update)
