"""The to-onnx / export / validate / inspect commands through the real entry point (exit codes 0/1/2)."""

from __future__ import annotations

import json

import onnx
import pytest
import torch
from tamper import reseal, swap_onnx_outputs

from rlexport.export import export_onnx
from rlexport.models.factory import BuildSpec, build_estimator, build_module, estimator_example


def _estimator_onnx(path):
    est = build_estimator("gae", max_steps=6)
    return export_onnx(est, estimator_example(est, 3, 8), path)


def _loss_onnx(path):
    built = build_module(BuildSpec(preset="cartpole", loss="a2c", batch=4))
    return export_onnx(built.module, built.example, path)


@pytest.fixture(scope="module")
def good_onnx(tmp_path_factory):
    return _estimator_onnx(tmp_path_factory.mktemp("cli") / "est.onnx")


def test_validate_passes_exit_0_and_writes_json(run_cli, good_onnx, tmp_path):
    code, out = run_cli("validate", good_onnx, "--json", tmp_path / "r.json")
    assert code == 0, out
    assert "onnx-cpu" in out and "pass" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["passed"] is True and {r["output"] for r in report["rows"]} == {"advantage", "value_target"}
    assert "onnx-cuda" in report["skipped"] or any(r["backend"] == "onnx-cuda" for r in report["rows"])


def test_validate_perturbed_constant_exit_1_names_output(run_cli, tmp_path):
    path = _loss_onnx(tmp_path / "l.onnx")
    model = onnx.load(str(path))
    for node in model.graph.node:  # perturb a Constant node if any, else an initializer
        if node.op_type == "Constant":
            break
    init = next(i for i in model.graph.initializer if onnx.numpy_helper.to_array(i).size > 1)
    arr = onnx.numpy_helper.to_array(init).copy()
    arr.flat[0] += 1.0
    init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
    onnx.save(model, str(path))
    reseal(path)
    code, out = run_cli("validate", path)
    assert code == 1, out
    assert "FAIL" in out and ("loss_objective" in out or "loss_entropy" in out or "loss_critic" in out)


def test_validate_swapped_outputs_exit_1(run_cli, tmp_path):
    path = _estimator_onnx(tmp_path / "e.onnx")
    swap_onnx_outputs(path, "advantage", "value_target")
    code, out = run_cli("validate", path)
    assert code == 1 and "'advantage'" in out


def test_validate_usage_errors_exit_2(run_cli, tmp_path):
    code, out = run_cli("validate", tmp_path / "missing.onnx")
    assert code == 2 and "no such file" in out
    junk = tmp_path / "junk.onnx"
    junk.write_text("not a model")
    code, out = run_cli("validate", junk)
    assert code == 2 and "is not an ONNX model" in out
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(onnx.load(str(_loss_onnx(tmp_path / "x" / "l.onnx"))).SerializeToString())
    code, out = run_cli("validate", bare)
    assert code == 2 and "golden" in out
    code, out = run_cli("validate", tmp_path / "x" / "l.onnx", "--backend", "pt2")
    assert code == 2 and "cannot run" in out


def test_inspect(run_cli, good_onnx, tmp_path):
    code, out = run_cli("inspect", good_onnx, "--json")
    assert code == 0, out
    info = json.loads(out)
    assert info["inputs"]["next_reward"]["shape"] == ["batch", "time", 1]
    assert info["outputs"]["advantage"]["shape"][:2] == ["batch", "time"]
    assert info["opset"]["ai.onnx"] >= 18 and info["nodes"] > 0
    assert info["metadata"]["out_keys"] == ["advantage", "value_target"]
    code, out = run_cli("inspect", good_onnx, width=80)  # shapes literally, also on an 80-column terminal
    assert code == 0 and "[batch, time, 1]" in out and "golden sample" in out, out
    assert all(len(line) <= 80 for line in out.splitlines()), out
    code, out = run_cli("inspect", tmp_path / "nope.pt2")
    assert code == 2


def test_to_onnx_and_export_from_preset(run_cli, tmp_path):
    out_path = tmp_path / "a2c.onnx"
    code, out = run_cli("to-onnx", "--preset", "cartpole", "--loss", "a2c", "--entropy-coeff", "0.02",
                        "--out", out_path, "--out-keys", "loss_objective,loss_critic", "--batch", "4")
    assert code == 0, out
    model = onnx.load(str(out_path))
    assert [o.name for o in model.graph.output] == ["loss_objective", "loss_critic"]
    assert run_cli("validate", out_path)[0] == 0
    code, out = run_cli("export", "--format", "pt2", "--preset", "cartpole", "--loss", "a2c", "--out", tmp_path / "p" / "a2c.pt2")
    assert code == 0, out
    assert run_cli("validate", tmp_path / "p" / "a2c.pt2")[0] == 0
    code, out = run_cli("to-onnx", "--preset", "cartpole", "--loss", "a2c", "--static", "--dtype", "float64", "--out", tmp_path / "s.onnx")
    assert code == 0, out
    assert all(d.dim_value for d in onnx.load(str(tmp_path / "s.onnx")).graph.input[0].type.tensor_type.shape.dim)


def test_to_onnx_usage_errors(run_cli, tmp_path):
    cases = [
        (["--preset", "cartpole", "--loss", "nope"], "choose one of"),
        (["--preset", "nope", "--loss", "a2c"], "preset"),
        (["--preset", "cartpole"], "--loss"),
        (["--preset", "cartpole", "--loss", "a2c", "--clip-epsilon", "0.1"], "clip_epsilon"),
        (["--preset", "cartpole", "--loss", "a2c", "--gamma", "0.9"], "--estimator"),
        (["--preset", "cartpole", "--loss", "a2c", "--dtype", "int8"], "float32 or float64"),
        (["--preset", "cartpole", "--loss", "a2c", "--out-keys", "nope"], "nope"),
        (["--preset", "cartpole", "--loss", "a2c", "--checkpoint", tmp_path / "none.pt"], "no such file"),
    ]
    for args, needle in cases:
        code, out = run_cli("to-onnx", *args, "--out", tmp_path / "x.onnx")
        assert code == 2, (args, out)
        assert needle in out, (args, out)
    assert not (tmp_path / "x.onnx").exists()
    code, out = run_cli("export", "--format", "zip", "--preset", "cartpole", "--loss", "a2c")
    assert code == 2


def test_to_onnx_from_checkpoint(run_cli, tmp_path):
    from rlexport.export import read_golden
    from rlexport.models.presets import get_preset

    other = get_preset("cartpole").build(seed=3)
    ckpt = tmp_path / "ck.pt"
    torch.save({"actor": other.actor.state_dict(), "critic": other.critic.state_dict()}, ckpt)
    code, out = run_cli("to-onnx", "--preset", "cartpole", "--loss", "a2c", "--checkpoint", ckpt, "--out", tmp_path / "c.onnx")
    assert code == 0, out
    code, out = run_cli("to-onnx", "--preset", "cartpole", "--loss", "a2c", "--out", tmp_path / "d.onnx")
    assert code == 0, out
    a = read_golden(tmp_path / "c.onnx").cases[0].outputs["loss_critic"]
    b = read_golden(tmp_path / "d.onnx").cases[0].outputs["loss_critic"]
    assert (a != b).any()  # the checkpoint's weights were used
    wrong = get_preset("mujoco").build()
    torch.save({"actor": wrong.actor.state_dict(), "critic": wrong.critic.state_dict()}, ckpt)
    code, out = run_cli("to-onnx", "--preset", "cartpole", "--loss", "a2c", "--checkpoint", ckpt, "--out", tmp_path / "e.onnx")
    assert code == 2 and "does not match the network" in out
    code, out = run_cli("to-onnx", "--preset", "pendulum", "--loss", "a2c", "--checkpoint", ckpt, "--out", tmp_path / "e.onnx")
    assert code == 2 and "has shape" in out and "the network expects" in out
    assert not (tmp_path / "e.onnx").exists()
