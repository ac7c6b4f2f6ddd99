"""Training loop: files, learning on CartPole, resume after an interruption or a kill, engines."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from rlexport.train import TrainInterrupted, make_config, train
from rlexport.train.checkpoint import load_checkpoint
from train_runs import CKPT, assert_engines_agree, assert_same_checkpoints
from train_runs import csv_rows as _rows


def test_ppo_torch_learns_cartpole_and_writes_run_folder(tmp_path):
    out = tmp_path / "run"
    res = train(make_config("ppo", "CartPole-v1", total_steps=25_600, out=str(out), export_artifacts=False))
    for name in ("config.json", CKPT, "metrics.csv", "episodes.csv", "learning_curve.png", "summary.json"):
        assert (out / name).is_file(), name
    rows = _rows(out / "metrics.csv")
    assert len(rows) == 50 and int(rows[-1]["global_step"]) == 25_600
    assert float(rows[-1]["learning_rate"]) < float(rows[0]["learning_rate"])  # linear decay
    eps = [float(r["return"]) for r in _rows(out / "episodes.csv")]
    first, last = np.mean(eps[:20]), np.mean(eps[-20:])
    assert last > 2 * first and last > 100, (first, last)
    assert res.mean_return == pytest.approx(last, rel=1e-4)


def test_resume_after_interruption_is_exact(tmp_path, short_kwargs):
    a, b = tmp_path / "a", tmp_path / "b"
    train(make_config("ppo", "CartPole-v1", out=str(a), **short_kwargs))
    with pytest.raises(TrainInterrupted, match="--resume"):
        train(make_config("ppo", "CartPole-v1", out=str(b), **short_kwargs), stop_after_updates=1)
    _, meta = load_checkpoint(b / CKPT)
    assert meta["global_step"] == 512
    train(resume=b)
    assert_same_checkpoints(a, b)
    assert (a / "episodes.csv").read_text() == (b / "episodes.csv").read_text()
    ra, rb = _rows(a / "metrics.csv"), _rows(b / "metrics.csv")
    assert [r["loss"] for r in ra] == [r["loss"] for r in rb]


def test_resume_after_sigkill(tmp_path):
    """A real kill -9 mid-run; the resumed run ends where an uninterrupted one does."""
    kw = dict(total_steps=5120, export_artifacts=False, checkpoint_every=1)
    a, b = tmp_path / "a", tmp_path / "b"
    code = (
        "import sys; from rlexport.train import make_config, train; "
        f"train(make_config('a2c', 'CartPole-v1', out=sys.argv[1], total_steps={kw['total_steps']}, "
        "export_artifacts=False, checkpoint_every=1))"
    )
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    proc = subprocess.Popen([sys.executable, "-c", code, str(b)], env=env)
    deadline = time.time() + 300  # a loaded CI machine: start-up alone can take a minute
    while time.time() < deadline:  # wait until a few updates are checkpointed
        rows = _rows(b / "metrics.csv") if (b / "metrics.csv").exists() else []
        if len(rows) >= 10:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _, meta = load_checkpoint(b / CKPT)
    assert 0 < meta["global_step"] < kw["total_steps"]
    train(resume=b)
    train(make_config("a2c", "CartPole-v1", out=str(a), **kw))
    assert_same_checkpoints(a, b)
    assert (a / "episodes.csv").read_text() == (b / "episodes.csv").read_text()


def test_onnx_engine_matches_torch_engine_and_learns(tmp_path):
    """Same seed: the first update in ONNX Runtime matches torch's; then the ONNX run learns."""
    from rlexport.train.loop import Trainer

    cfg_t = make_config("ppo", "CartPole-v1", total_steps=512, out=str(tmp_path / "t"), export_artifacts=False)
    cfg_o = make_config("ppo", "CartPole-v1", total_steps=12_800, out=str(tmp_path / "o"), engine="onnx")
    (tmp_path / "t").mkdir()
    (tmp_path / "o").mkdir()
    tt, to = Trainer(cfg_t, tmp_path / "t"), Trainer(cfg_o, tmp_path / "o")
    assert tt.engine.state().keys() == to.engine.state().keys()
    for k, v in tt.engine.state().items():
        assert torch.equal(v, to.engine.state()[k]), k
    assert_engines_agree(tt, to)
    tt.close()
    to.close()
    import shutil

    shutil.rmtree(tmp_path / "o")
    res = train(cfg_o)
    eps = [float(r["return"]) for r in _rows(tmp_path / "o" / "episodes.csv")]
    assert np.mean(eps[-20:]) > 1.5 * np.mean(eps[:20]), (np.mean(eps[:20]), np.mean(eps[-20:]))
    assert res.global_step == 12_800
    # every runtime graph was exported with a golden sample; the final train step is the runtime
    # graph (copied, not exported a second time) and passes validation
    o = tmp_path / "o"
    for name in ("act", "gae", "train_step"):
        assert (o / "graphs" / f"{name}.golden" / "index.json").is_file(), name
    assert (o / "artifacts" / "train_step.onnx").read_bytes() == (o / "graphs" / "train_step.onnx").read_bytes()
    assert res.validation_passed


def test_pendulum_box_actions_run(tmp_path):
    for dist in ("normal", "tanh_normal"):
        out = tmp_path / dist
        train(make_config("ppo", "Pendulum-v1", total_steps=2048, num_steps=256, out=str(out), box_distribution=dist,
                          export_artifacts=False))
        t, _ = load_checkpoint(out / CKPT)
        assert "obs_rms.mean" in t and t["obs_rms.count"].item() > 2048  # --normalize-obs is on for Pendulum


def test_onnx_engine_resume_after_interruption_is_exact(tmp_path, short_kwargs):
    """The ONNX engine's bound train steps and act buffers pick up a resumed state exactly."""
    a, b = tmp_path / "a", tmp_path / "b"
    train(make_config("ppo", "CartPole-v1", engine="onnx", out=str(a), **short_kwargs))
    with pytest.raises(TrainInterrupted, match="--resume"):
        train(make_config("ppo", "CartPole-v1", engine="onnx", out=str(b), **short_kwargs), stop_after_updates=1)
    train(resume=b)
    assert_same_checkpoints(a, b)
    assert (a / "episodes.csv").read_text() == (b / "episodes.csv").read_text()
    assert [r["loss"] for r in _rows(a / "metrics.csv")] == [r["loss"] for r in _rows(b / "metrics.csv")]
