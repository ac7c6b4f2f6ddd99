"""Conditioning-aware golden tolerances for gradient and train-step graphs (docs/design.md,
"Golden sample format"; the forward artifacts' rule, tests/export/test_tolerance.py).

``ClipPPOLoss(normalize_advantage=True)`` in float32 on advantages with a large mean and a small
spread: ``loss_objective`` is a near-zero mean of O(1) normalised advantages, its gradient and
the Adam step taken from it are ill-conditioned, and eager float32 PyTorch itself lands beyond
the default atol from the float64 reference. Such a float32 train step (what ``rlexport train``
exports) failed its own export verification; its golden sample now records per-output
tolerances from the float32 eager ``torch.optim`` run.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from tamper import reseal

from rlexport.artifact.tolerance import DEFAULT_TOLERANCES, EAGER_ERROR_FACTOR
from rlexport.export.grad import export_grad
from rlexport.runtime.check import check_against_golden
from rlexport.export.train_step import export_train_step

F32_RTOL, F32_ATOL = DEFAULT_TOLERANCES["float32"]


def _ill_conditioned(seed=1, spread=1e-4):
    from rlexport.models.factory import BuildSpec, build_module

    built = build_module(
        BuildSpec(preset="cartpole", loss="clip-ppo", options={"normalize_advantage": True}, batch=64)
    )
    example = dict(built.example)
    gen = torch.Generator().manual_seed(seed)
    example["advantage"] = 5.0 + spread * torch.randn(example["advantage"].shape, generator=gen)
    return built.module, example


@pytest.fixture(scope="module")
def train_step(tmp_path_factory):
    """Seed 1, spread 1e-4: before per-output tolerances this export failed its verification
    (new.param.actor_network.module.0.weight off by 1.9e-3, atol 1e-5)."""
    module, example = _ill_conditioned()
    path = tmp_path_factory.mktemp("ts_tol") / "ts.onnx"
    export_train_step(module, example, path, dtype="float32")  # verifies against the golden sample
    return path


def _index(path):
    return json.loads((path.parent / (path.name[: -len(".onnx")] + ".golden") / "index.json").read_text())


def _copy(path, dst):
    dst.mkdir()
    stem = path.name[: -len(".onnx")]
    for p in path.parent.iterdir():
        if p.name.startswith(stem + "."):
            (shutil.copytree if p.is_dir() else shutil.copy)(p, dst / p.name)
    return dst / path.name


def test_ill_conditioned_float32_train_step_records_per_output_tolerances(train_step):
    index = _index(train_step)
    assert index["kind"] == "train_step"
    assert (index["rtol"], index["atol"]) == (F32_RTOL, F32_ATOL)  # top level unchanged for old readers
    rule = index["tolerance_rule"]
    assert rule["dtype"] == "float32" and rule["factor"] == EAGER_ERROR_FACTOR
    for case in index["cases"]:
        outs = case["outputs"]
        for name in ("loss_objective", "grad_norm", "new.param.actor_network.module.0.weight", "new.adam.exp_avg.actor_network.module.0.weight"):
            tol = outs[name]["tolerance"]
            assert tol["rtol"] == F32_RTOL
            assert tol["atol"] == pytest.approx(max(F32_ATOL, EAGER_ERROR_FACTOR * tol["eager_abs_err"]))
        assert "tolerance" not in outs["new.adam.step"]  # float64 step counter: exact, defaults
        assert outs["loss_objective"]["tolerance"]["atol"] > F32_ATOL  # the ill-conditioned output is widened
        assert outs["loss_objective"]["tolerance"] == index["cases"][0]["outputs"]["loss_objective"]["tolerance"]


def test_well_conditioned_outputs_keep_the_default(train_step):
    outs = _index(train_step)["cases"][0]["outputs"]
    # the critic loss does not depend on the advantages' conditioning
    assert outs["loss_critic"]["tolerance"]["atol"] < 10 * F32_ATOL


def test_tampered_golden_output_is_still_caught(train_step, tmp_path):
    """An ill-conditioned output off by 10 x its recorded atol, and a well-conditioned one off by
    a few percent, fail verification."""
    from rlexport.artifact.golden import read_golden

    for name in ("loss_objective", "loss_critic"):
        path = _copy(train_step, tmp_path / name)
        gdir = path.parent / "ts.golden"
        index = json.loads((gdir / "index.json").read_text())
        entry = index["cases"][0]["outputs"][name]
        f = gdir / entry["file"]
        value = np.fromfile(f, dtype=np.float32)
        delta = 10 * entry["tolerance"]["atol"] if name == "loss_objective" else 0.03 * max(1.0, float(np.abs(value).max()))
        (value + np.float32(delta)).astype(np.float32).tofile(f)
        reseal(path)  # digests re-recorded: a well-formed sample with a wrong value
        read_golden(gdir)
        report = check_against_golden(path, ["onnx-cpu"])
        assert not report.passed and {r.output for r in report.failures} == {name}


def test_ill_conditioned_float32_grad_graph_verifies_with_tolerances(tmp_path):
    module, example = _ill_conditioned(seed=0)
    path = tmp_path / "g.onnx"
    export_grad(module, example, path, dtype="float32")  # failed: loss_objective off by 5.2e-3, atol 1e-5
    index = _index(path)
    assert index["kind"] == "grad" and index["tolerance_rule"]["dtype"] == "float32"
    for case in index["cases"]:
        tol = case["outputs"]["loss_objective"]["tolerance"]
        assert tol["atol"] > F32_ATOL and tol["atol"] == pytest.approx(EAGER_ERROR_FACTOR * tol["eager_abs_err"])
        assert all("tolerance" in e for n, e in case["outputs"].items() if n.startswith("grad."))
    from rlexport.validate import validate

    assert validate(path).passed  # validate(artifact) reads the per-output entries of a grad golden


def test_float64_goldens_are_unchanged(tmp_path):
    module, example = _ill_conditioned()
    for kind, export in (("grad", export_grad), ("train_step", export_train_step)):
        path = tmp_path / f"{kind}.onnx"
        export(module, example, path, dtype="float64")
        index = _index(path)
        assert "tolerance_rule" not in index
        assert not any("tolerance" in e for c in index["cases"] for e in c["outputs"].values())


def test_validate_train_step_uses_the_recorded_tolerances(tmp_path):
    """``validate_train_step(path, loss=...)`` runs 10 fresh steps in ORT and in eager float32:
    with default bounds each output's bound is at least the golden sample's recorded atol, so a
    correct ill-conditioned artifact passes; explicit bounds are used as given. From the artifact
    alone (``rlexport validate``) the golden steps pass with the recorded tolerances."""
    from rlexport.artifact.golden import read_golden
    from rlexport.validate import validate_train_step

    loss, example = _ill_conditioned(seed=0, spread=1e-3)
    path = tmp_path / "step.onnx"
    export_train_step(loss, example, path)
    sample = read_golden(tmp_path / "step.golden")
    widened = max(sample.tolerance(c, "loss_objective")[1] for c in sample.cases)
    assert widened > F32_ATOL
    report = validate_train_step(path, k=10, loss=loss)
    assert report.passed, report.failures
    alone = validate_train_step(path)
    assert alone.passed and alone.reference == "its golden sample", alone.failures
    strict = validate_train_step(path, k=10, loss=loss, atol=F32_ATOL, rtol=F32_RTOL)
    assert strict.atol_params == F32_ATOL and strict.rtol_outputs == F32_RTOL
