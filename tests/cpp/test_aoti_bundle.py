"""AOTInductor graphs in a training bundle (``rlexport bundle --format aoti``): the train-step
package against the ONNX train step and against eager ``torch.optim.Adam`` + ``clip_grad_norm_``
over K successive steps (state fed back, changing lr and batch size); the act and advantage
packages against their ONNX twins. One small bundle is compiled for the whole module (AOTInductor
compiles take tens of seconds)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from rlexport.artifact.tolerance import tolerances
from rlexport.export import read_golden
from rlexport.runtime.load import load_artifact

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# small and quick to compile: 2 envs x 8 steps, 2 epochs x 2 minibatches
SMALL = dict(num_envs=2, num_steps=8, update_epochs=2, num_minibatches=2, total_steps=64, seed=5, hidden=(16, 16))
K = 4


@pytest.fixture(scope="module")
def aoti_bundle(tmp_path_factory):
    from rlexport.train.bundle import make_bundle
    from rlexport.train.config import make_config

    cfg = make_config("ppo", "CartPole-v1", **SMALL)
    out = tmp_path_factory.mktemp("aoti-bundle") / "b"
    make_bundle(cfg, out, formats=("aoti",))
    return cfg, out


def _graph(bundle, role, fmt):
    doc = json.loads((bundle / "bundle.json").read_text())
    entry = doc["graphs"][role][fmt]
    return load_artifact(bundle / entry["file"]), json.loads((bundle / entry["meta"]).read_text())


def _random_batch(meta, rows, rng):
    """A minibatch of ``rows`` rows for the train step's batch inputs (shapes from X.json)."""
    out = {}
    for name in meta["layout"]["batch"]:
        spec = meta["inputs"][name]
        shape = [rows if isinstance(d, str) else d for d in spec["shape"]]
        if spec["dtype"] == "int64":
            out[name] = rng.integers(0, 2, size=shape).astype(np.int64)
        elif name == "sample_log_prob":
            out[name] = (-np.abs(rng.standard_normal(shape)) - 0.5).astype(np.float32)
        else:
            out[name] = rng.standard_normal(shape).astype(np.float32)
    return out


def _torch_optim_steps(cfg, meta, initial, steps):
    """The reference: the bundle's loss rebuilt eagerly from the initial parameters, stepped with
    torch.optim.Adam and clip_grad_norm_; per step the new parameters, Adam state and losses."""
    from rlexport.train.agent import AgentSpec, build_agent
    from rlexport.train.engines import build_loss, named_trainable
    from rlexport.train.envs import describe_spaces

    obs_space, act_space = describe_spaces(cfg.env_id)
    actor, critic = build_agent(AgentSpec(int(obs_space.shape[0]), act_space, cfg.box_distribution), cfg.hidden, cfg.seed)
    loss = build_loss(cfg, actor, critic)
    params = named_trainable(loss)
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(torch.from_numpy(initial[f"param.{n}"]))
    hp = meta["hyperparams"]
    opt = torch.optim.Adam(list(params.values()), lr=hp["hp.lr"], betas=(hp["hp.beta1"], hp["hp.beta2"]), eps=hp["hp.eps"])
    results = []
    for batch, lr in steps:
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad()
        outs = dict(zip(meta["loss_out_keys"], loss(**{k: torch.from_numpy(v) for k, v in batch.items()})))
        sum(outs[k] for k in meta["loss_keys"]).backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), float(hp["hp.max_grad_norm"]))
        opt.step()
        rec = {f"new.param.{n}": p.detach().numpy().copy() for n, p in params.items()}
        for n, p in params.items():
            rec[f"new.adam.exp_avg.{n}"] = opt.state[p]["exp_avg"].numpy().copy()
            rec[f"new.adam.exp_avg_sq.{n}"] = opt.state[p]["exp_avg_sq"].numpy().copy()
        rec.update({k: v.detach().numpy().copy() for k, v in outs.items() if k in meta["loss_keys"]})
        results.append(rec)
    return results


def _run_graph_steps(runner, meta, initial, steps):
    state = dict(initial)
    results = []
    for batch, lr in steps:
        feeds = {**state, **batch}
        for name, value in meta["hyperparams"].items():
            dtype = np.bool_ if meta["inputs"][name]["dtype"] == "bool" else np.float64
            feeds[name] = np.asarray(lr if name == "hp.lr" else float(value), dtype)
        out = runner(feeds)
        for s, o in meta["state"].items():
            state[s] = out[o]
        results.append(out)
    return results


def test_aoti_train_step_equals_onnx_and_torch_optim(aoti_bundle):
    cfg, bundle = aoti_bundle
    aoti, meta = _graph(bundle, "train_step", "aoti")
    onnx, onnx_meta = _graph(bundle, "train_step", "onnx")
    assert meta["format"] == "aoti" and onnx_meta["format"] == "onnx"
    assert meta["input_names"] == onnx_meta["input_names"] and list(meta["outputs"]) == list(onnx_meta["outputs"])
    initial = dict(read_golden(bundle / "state").cases[0].inputs)
    rng = np.random.default_rng(0)
    m = cfg.minibatch_size
    steps = [(_random_batch(meta, rows, rng), cfg.learning_rate * (1 - 0.2 * i)) for i, rows in enumerate([m, 2 * m, m, 3])]
    ref = _torch_optim_steps(cfg, meta, initial, steps)
    got_aoti = _run_graph_steps(aoti.runner("aoti"), meta, initial, steps)
    got_onnx = _run_graph_steps(onnx.runner("onnx-cpu"), onnx_meta, initial, steps)
    rtol, atol = tolerances(torch.float32)
    moved = max(float(np.abs(ref[-1][f"new.{k}"] - v).max()) for k, v in initial.items() if k.startswith("param."))
    assert moved > 1e-4, "the parameters did not move: the comparison would be vacuous"
    for i in range(K):
        for name, expected in ref[i].items():
            np.testing.assert_allclose(got_aoti[i][name], expected, rtol=rtol, atol=atol, err_msg=f"aoti step {i} {name}")
            np.testing.assert_allclose(got_onnx[i][name], expected, rtol=rtol, atol=atol, err_msg=f"onnx step {i} {name}")
        assert float(got_aoti[i]["new.adam.step"]) == i + 1


@pytest.mark.parametrize("role", ["act", "advantage"])
def test_aoti_act_and_advantage_equal_their_onnx_graphs(aoti_bundle, role):
    _, bundle = aoti_bundle
    aoti, meta = _graph(bundle, role, "aoti")
    onnx, onnx_meta = _graph(bundle, role, "onnx")
    assert meta["input_names"] == onnx_meta["input_names"]
    sample = read_golden(bundle / json.loads((bundle / "bundle.json").read_text())["graphs"][role]["onnx"]["golden"])
    rtol, atol = tolerances(torch.float32)
    for case in sample.cases:
        a, o = aoti.runner("aoti")(case.inputs), onnx.runner("onnx-cpu")(case.inputs)
        for name, expected in case.outputs.items():
            np.testing.assert_allclose(a[name], expected, rtol=rtol, atol=atol, err_msg=f"aoti {role} {name}")
            np.testing.assert_allclose(a[name], o[name], rtol=rtol, atol=atol, err_msg=f"aoti vs onnx {role} {name}")


def test_bundle_refuses_an_unknown_format(tmp_path):
    from rlexport.train.bundle import BundleError, make_bundle
    from rlexport.train.config import make_config

    with pytest.raises(BundleError, match=r"--format 'tflite' is not a bundle graph format; choose from \['onnx', 'aoti'\]"):
        make_bundle(make_config("ppo", "CartPole-v1", **SMALL), tmp_path / "b", formats=("tflite",))
    assert not (tmp_path / "b").exists()


def test_cli_bundle_refuses_an_unknown_format_with_exit_2(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "rlexport.cli.app", "bundle", "--format", "tflite", "-o", str(tmp_path / "b")],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [ln for ln in (done.stdout + done.stderr).splitlines() if "tflite" in ln]
    assert len(lines) == 1 and "not a bundle graph format" in lines[0], done.stdout + done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "b").exists()
