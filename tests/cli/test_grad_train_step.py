"""CLI round trips of gradient and train-step graphs: `to-onnx --grad/--train-step`, `validate` (a train
step's golden steps in ONNX Runtime, from the artifact alone; exit 0/1/2), `inspect`, and `--max-horizon`."""

from __future__ import annotations

import json

import numpy as np
import onnx
from cli_helpers import scale_constants


def test_train_step_adam_export_validate_inspect_tamper(run_cli, tmp_path):
    path = tmp_path / "ts.onnx"
    code, out = run_cli("to-onnx", "--preset", "cartpole", "--loss", "a2c", "--train-step", "--lr", "0.01",
                        "--max-grad-norm", "0.5", "--batch", "4", "--golden-steps", "2", "--out", path)
    assert code == 0, out
    assert "train step, adam" in out and "state pairs: 37" in out and "hp.lr=0.01" in out and "hp.max_grad_norm=0.5" in out
    assert not (tmp_path / "ts.loss.pt").exists() and (tmp_path / "ts.golden").is_dir()
    meta = json.loads((tmp_path / "ts.json").read_text())
    assert meta["kind"] == "train_step" and meta["optimizer"] == "adam" and meta["hyperparams"]["hp.lr"] == 0.01

    code, out = run_cli("validate", path, "--json", tmp_path / "r.json")
    assert code == 0, out
    assert "parameters" in out and "grad_norm" in out and "pass" in out and "FAIL" not in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["kind"] == "train_step" and report["passed"] is True and report["k"] == 3  # b4, b9, b1
    assert report["batch_sizes"] == [4, 9, 1]

    code, out = run_cli("inspect", path)
    assert code == 0, out
    assert "state pairs (37)" in out and "new.adam.step" in out and "hp.beta2" in out and "0.999" in out

    bad = scale_constants(path, tmp_path / "bad")
    code, out = run_cli("validate", bad, "--json", tmp_path / "bad.json")
    assert code == 1, out
    assert "FAIL" in out and json.loads((tmp_path / "bad.json").read_text())["passed"] is False

    (tmp_path / "bad" / "ts.json").write_text((tmp_path / "bad" / "ts.json").read_text().replace('"sha256"', '"sha"'))
    (tmp_path / "bad" / "ts.onnx").write_bytes(path.read_bytes()[:-7])  # truncated model: bad input
    code, out = run_cli("validate", bad)
    assert code == 2, out
    code, out = run_cli("validate", path, "--backend", "pt2")
    assert code == 2 and "cannot run a train-step graph" in out


def test_train_step_sgd_with_in_graph_estimator_and_max_horizon(run_cli, tmp_path):
    path = tmp_path / "sgd.onnx"
    code, out = run_cli("to-onnx", "--preset", "cartpole", "--loss", "a2c", "--estimator", "gae", "--max-horizon", "16",
                        "--train-step", "--optimizer", "sgd", "--momentum", "0.9", "--weight-decay", "0.01",
                        "--batch", "3", "--golden-steps", "2", "--out", path)
    assert code == 0, out
    assert "train step, sgd" in out and "max_steps 4" in out and "hp.momentum=0.9" in out
    meta = json.loads((tmp_path / "sgd.json").read_text())
    assert meta["optimizer"] == "sgd" and meta["inputs"]["next_reward"]["shape"][:2] == ["batch", "time"]
    code, out = run_cli("validate", path)
    assert code == 0, out


def test_grad_export_validate_andscale_constants(run_cli, tmp_path):
    path = tmp_path / "g.onnx"
    code, out = run_cli("to-onnx", "--preset", "cartpole", "--loss", "clip-ppo", "--grad", "--batch", "4", "--out", path)
    assert code == 0, out
    assert "gradient graph" in out and "grad" in out
    model = onnx.load(str(path))
    outs = [o.name for o in model.graph.output]
    assert "loss_objective" in outs and any(o.startswith("grad.actor_network") for o in outs)
    code, out = run_cli("validate", path, "--json", tmp_path / "r.json")
    assert code == 0, out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["kind"] == "grad" and report["passed"] and any(r["output"].startswith("grad.") for r in report["rows"])
    code, narrow = run_cli("validate", path, width=80)  # an 80-column terminal: every name whole, no line wider
    assert code == 0 and all(len(line) <= 80 for line in narrow.splitlines()), narrow
    assert all(name in narrow for name in outs), narrow
    code, out = run_cli("validate", scale_constants(path, tmp_path / "bad"))
    assert code == 1 and "FAIL" in out, out
    code, out = run_cli("validate", path, "--steps", "3")
    assert code == 2 and "--steps" in out


def test_max_horizon_estimator_exact_up_to_bound_nan_beyond(run_cli, tmp_path):
    import onnxruntime as ort

    path = tmp_path / "td.onnx"
    code, out = run_cli("to-onnx", "--preset", "cartpole", "--estimator", "td-lambda", "--max-horizon", "20",
                        "--batch", "2", "--out", path)
    assert code == 0, out
    assert "max_steps 5" in out and "up to 32" in out
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)

    def run(T):
        feeds = {}
        for i in sess.get_inputs():
            shape = [1, T] + [d for d in i.shape[2:]]
            feeds[i.name] = (rng.random(shape) < 0.1) if i.type == "tensor(bool)" else rng.standard_normal(shape).astype(np.float32)
        return sess.run(None, feeds)

    assert all(np.isfinite(o).all() for o in run(32))
    assert all(np.isnan(o).all() for o in run(33))


def test_usage_errors_exit_2(run_cli, tmp_path):
    cases = [
        (["--estimator", "gae", "--grad"], "--grad differentiates a loss"),
        (["--estimator", "gae", "--train-step"], "--train-step differentiates a loss"),
        (["--loss", "a2c", "--grad", "--train-step"], "choose one"),
        (["--loss", "a2c", "--lr", "0.1"], "add --train-step"),
        (["--loss", "a2c", "--optimizer", "sgd"], "add --train-step"),
        (["--loss", "a2c", "--train-step", "--optimizer", "rmsprop"], "choose one of"),
        (["--loss", "a2c", "--train-step", "--momentum", "0.9"], "not a hyper-parameter of --optimizer adam"),
        (["--loss", "a2c", "--train-step", "--optimizer", "sgd", "--beta1", "0.8"], "not a hyper-parameter of --optimizer sgd"),
        (["--loss", "a2c", "--train-step", "--lr", "-1"], "must be a finite number >= 0"),
        (["--loss", "a2c", "--train-step", "--max-grad-norm", "0"], "must be > 0"),
        (["--loss", "a2c", "--train-step", "--optimizer", "sgd", "--nesterov"], "--nesterov needs"),
        (["--loss", "a2c", "--grad", "--out-keys", "loss_critic"], "--out-keys"),
        (["--loss", "a2c", "--golden-steps", "5"], "add --train-step"),
        (["--loss", "a2c", "--max-horizon", "64"], "add --estimator"),
        (["--estimator", "gae", "--max-horizon", "1"], "integer >= 2"),
        (["--estimator", "gae", "--max-horizon", "4"], "--max-horizon 7 or more"),
        (["--estimator", "gae", "--max-horizon", "16", "--time", "12"], "lower --time"),
    ]
    for args, needle in cases:
        code, out = run_cli("to-onnx", "--preset", "cartpole", *args, "--out", tmp_path / "x.onnx")
        assert code == 2, (args, out)
        assert needle in " ".join(out.split()), (args, out)
    assert not (tmp_path / "x.onnx").exists()
    for flag in ("--train-step", "--grad"):
        code, out = run_cli("export", "--format", "pt2", "--preset", "cartpole", "--loss", "a2c", flag)
        assert code == 2 and "ONNX graph only" in out, out
