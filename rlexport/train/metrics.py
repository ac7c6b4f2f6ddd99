"""Run metrics: ``metrics.csv`` (one row per update), ``episodes.csv`` (one row per finished
episode), TensorBoard event files when ``torch.utils.tensorboard`` works, and the learning-curve
PNG. On resume both CSVs are cut back to the checkpoint's global step, so rows written after the
last checkpoint (and then recomputed) appear once.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

METRIC_FIELDS = [
    "update", "global_step", "time_s", "steps_per_s", "learning_rate", "episodes", "mean_return_20",
    "mean_length_20", "loss", "loss_objective", "loss_critic", "loss_entropy", "entropy",
    "kl_approx", "clip_fraction", "explained_variance",
]
EPISODE_FIELDS = ["global_step", "env", "return", "length"]


def _truncate_csv(path: Path, fields: list[str], max_step: int) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("global_step") and int(float(r["global_step"])) <= max_step]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return rows


class MetricsLogger:
    def __init__(self, run_dir: Path, resume_step: int | None = None, tensorboard: bool = True):
        self.run_dir = Path(run_dir)
        self.metrics_path = self.run_dir / "metrics.csv"
        self.episodes_path = self.run_dir / "episodes.csv"
        self.previous_episodes: list[dict[str, str]] = []
        if resume_step is not None:
            _truncate_csv(self.metrics_path, METRIC_FIELDS, resume_step)
            self.previous_episodes = _truncate_csv(self.episodes_path, EPISODE_FIELDS, resume_step)
        new_m = not self.metrics_path.exists()
        new_e = not self.episodes_path.exists()
        self._mf = open(self.metrics_path, "a", newline="")
        self._ef = open(self.episodes_path, "a", newline="")
        self._mw = csv.DictWriter(self._mf, fieldnames=METRIC_FIELDS, extrasaction="ignore")
        self._ew = csv.DictWriter(self._ef, fieldnames=EPISODE_FIELDS)
        if new_m:
            self._mw.writeheader()
        if new_e:
            self._ew.writeheader()
        self.tb = None
        if tensorboard:
            try:  # optional: tensorboard is not a dependency of rlexport
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=resume_step)
            except Exception:  # tensorboard not installed
                self.tb = None

    def episode(self, global_step: int, env: int, ret: float, length: int) -> None:
        self._ew.writerow({"global_step": global_step, "env": env, "return": f"{ret:.6g}", "length": length})
        if self.tb is not None:
            self.tb.add_scalar("charts/episodic_return", ret, global_step)
            self.tb.add_scalar("charts/episodic_length", length, global_step)

    def update(self, row: dict[str, Any]) -> None:
        self._mw.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        if self.tb is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and k not in ("update", "global_step"):
                    self.tb.add_scalar(f"train/{k}", v, row["global_step"])

    def flush(self) -> None:
        self._mf.flush()
        self._ef.flush()
        if self.tb is not None:
            self.tb.flush()

    def close(self) -> None:
        if self._mf.closed:
            return
        self.flush()
        self._mf.close()
        self._ef.close()
        if self.tb is not None:
            self.tb.close()


def read_episodes(run_dir: Path) -> list[tuple[int, float]]:
    path = Path(run_dir) / "episodes.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [(int(float(r["global_step"])), float(r["return"])) for r in csv.DictReader(f)]


def plot_learning_curve(run_dir: Path, title: str = "", window: int = 20) -> Path | None:
    """``learning_curve.png``: episodic returns and their running mean over ``window`` episodes."""
    # lazy: matplotlib costs ~1 s to import and only the end of a run draws
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    eps = read_episodes(run_dir)
    out = Path(run_dir) / "learning_curve.png"
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if eps:
        steps = np.array([s for s, _ in eps])
        rets = np.array([r for _, r in eps])
        ax.plot(steps, rets, ".", alpha=0.25, markersize=3, label="episode return")
        if len(rets) >= 1:
            k = min(window, len(rets))
            mean = np.convolve(rets, np.ones(k) / k, mode="valid")
            ax.plot(steps[k - 1:], mean, "-", linewidth=2, label=f"mean of last {k}")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episodic return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    tmp = out.with_name(out.name + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(out)
    return out
