"""``rlexport train`` run folders: the lock, SIGTERM, checkpoint fallback, edited configs, temp files,
time-based checkpoints, the 80-column progress bar."""

import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from rlexport.train import TrainInterrupted, make_config, train
from rlexport.train import loop as loop_mod
from rlexport.train.checkpoint import load_checkpoint

from cli_helpers import one_error_line
from train_runs import CKPT, assert_same_checkpoints
from train_runs import csv_rows as _rows

PREV = "checkpoints/previous.safetensors"


@pytest.fixture
def short_kwargs():
    return dict(total_steps=1536, export_artifacts=False, checkpoint_every=1)


def _same_final_state(a, b):
    assert_same_checkpoints(a, b)
    assert (a / "episodes.csv").read_text() == (b / "episodes.csv").read_text()


def test_lock_refuses_a_second_process_and_sigterm_stops_like_ctrl_c(run_cli, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-c", "from rlexport.cli.app import main; main()", "train", "--algo", "a2c",
           "--engine", "torch", "--total-steps", "400000", "--checkpoint-every", "0", "--no-export", "-q",
           "--out", str(run)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, OMP_WAIT_POLICY="PASSIVE", COLUMNS="80"))
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (run / "metrics.csv").exists() or len(_rows(run / "metrics.csv")) < 3:
            time.sleep(0.1)
        assert (run / ".lock").read_text().strip() == str(proc.pid)
        one_error_line(*run_cli(*["train", "--resume", str(run)]), f"in use by another rlexport train process (PID {proc.pid})")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, out
    assert f"resume with: rlexport train --resume {run}" in out and "Traceback" not in out
    _, meta = load_checkpoint(run / CKPT)  # checkpointed where it stopped, not 30 s earlier
    assert meta["global_step"] == int(_rows(run / "metrics.csv")[-1]["global_step"]) > 0
    assert not list(run.rglob("*.tmp*"))
    code, out = run_cli(*["train", "--resume", str(run), "--total-steps", str(meta["global_step"] + 400), "-q"])
    assert code == 0, out  # the dead holder's lock is free again


def test_corrupt_latest_checkpoint_falls_back_to_previous(run_cli, tmp_path, short_kwargs):
    a, b = tmp_path / "a", tmp_path / "b"
    train(make_config("ppo", "CartPole-v1", out=str(a), **short_kwargs))
    with pytest.raises(TrainInterrupted):
        train(make_config("ppo", "CartPole-v1", out=str(b), **short_kwargs), stop_after_updates=2)
    assert load_checkpoint(b / CKPT)[1]["global_step"] == 1024 and load_checkpoint(b / PREV)[1]["global_step"] == 512
    latest = (b / CKPT).read_bytes()
    (b / CKPT).write_bytes(latest[: len(latest) // 2])  # truncated
    (b / "checkpoints" / "latest.safetensors.tmp999999").write_bytes(b"half")  # left by a kill
    (b / "summary.json.tmp").write_text("{")
    code, out = run_cli(*["train", "--resume", str(b), "--no-export", "-q"])
    assert code == 0, out
    notice = [ln for ln in out.splitlines() if "previous checkpoint" in ln]
    assert len(notice) == 1 and "corrupt" in notice[0] and "step 512" in notice[0], out
    assert not list(b.rglob("*.tmp*"))
    _same_final_state(a, b)  # resumed from 512 instead of 1024: still the uninterrupted run

    for name in (CKPT, PREV):
        (b / name).write_bytes(b"\x00" * 10)
    one_error_line(*run_cli(*["train", "--resume", str(b)]), "corrupt")
    (b / CKPT).unlink()  # a kill between the two renames leaves only previous (here damaged too)
    one_error_line(*run_cli(*["train", "--resume", str(b)]), "no checkpoint")


def test_edited_config_that_does_not_fit_is_refused(run_cli, tmp_path, short_kwargs):
    run = tmp_path / "run"
    with pytest.raises(TrainInterrupted):
        train(make_config("ppo", "CartPole-v1", out=str(run), **short_kwargs), stop_after_updates=1)
    original = json.loads((run / "config.json").read_text())
    cases = [
        ({"hidden": [32, 32]}, "tensor 'param.actor_network.module.0.weight' is shape [64, 4], the config needs [32, 4]"),
        ({"num_envs": 8}, "tensor 'obs' is shape [4, 4], the config needs [8, 4]"),
        ({"vector_env": "native"}, "vector-env states"),
        ({"num_envs": "four"}, "is not a valid config"),
        ({"engine": "jax"}, "is not a valid config"),
    ]
    for edit, needle in cases:
        (run / "config.json").write_text(json.dumps({**original, **edit}))
        one_error_line(*run_cli(*["train", "--resume", str(run)]), needle)
    (run / "config.json").write_text("[1, 2]")
    one_error_line(*run_cli(*["train", "--resume", str(run)]), "is not a valid config")
    (run / "config.json").write_text(json.dumps(original))
    one_error_line(*run_cli(*["train", "--resume", str(run), "--seed", "3", "--lr", "1"]), "(got --seed, --learning-rate)")


def test_time_based_checkpoints_and_one_on_stop(tmp_path, short_kwargs, monkeypatch):
    monkeypatch.setattr(loop_mod, "CHECKPOINT_SECONDS", 1e9)
    run = tmp_path / "run"
    kw = dict(short_kwargs, checkpoint_every=0)
    with pytest.raises(TrainInterrupted, match="checkpoint at step 1024 is intact"):
        train(make_config("ppo", "CartPole-v1", out=str(run), **kw), stop_after_updates=2)
    assert load_checkpoint(run / CKPT)[1]["global_step"] == 1024
    assert load_checkpoint(run / PREV)[1]["global_step"] == 0  # none in between: the interval is not due
    monkeypatch.setattr(loop_mod, "CHECKPOINT_SECONDS", 0.0)
    train(resume=run)
    assert load_checkpoint(run / PREV)[1]["global_step"] == 1024  # due after every update


def test_progress_bar_fits_80_columns():
    from rich.console import Console

    import rlexport.cli.train as tr

    buf = io.StringIO()
    saved = tr.console
    tr.console = Console(file=buf, width=80, color_system=None)
    try:
        with tr._Progress(500_000, 0, "ppo/onnx") as bar:
            bar(None, {"global_step": 123_456, "steps_per_s": 23456.0, "mean_return_20": 487.25})
    finally:
        tr.console = saved
    line = [ln for ln in buf.getvalue().splitlines() if ln.strip()][-1]
    assert len(line) <= 80
    for part in ("123456/500000", "return 487.2", "23456/s", "ETA"):
        assert part in line, line
