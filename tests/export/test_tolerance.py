"""Conditioning-aware golden tolerances (docs/design.md, "Golden sample format").

The case that motivated them: ``ClipPPOLoss(normalize_advantage=True)`` in float32 on advantages
with a large mean and a small spread. ``loss_objective`` is then a near-zero mean of O(1)
normalised advantages; the mean subtraction and the division by a small std are ill-conditioned,
so eager float32 PyTorch itself lands farther than the default atol (1e-5) from the float64
reference, and a correct artifact failed its own export verification at random.
"""

import json

import numpy as np
import onnx
import onnx.numpy_helper
import pytest
import torch

from rlexport.export import export_onnx, read_golden, write_golden
from rlexport.artifact.tolerance import DEFAULT_TOLERANCES, EAGER_ERROR_FACTOR, output_tolerance
from rlexport.validate import validate

from tamper import reseal, swap_onnx_outputs

F32_RTOL, F32_ATOL = DEFAULT_TOLERANCES["float32"]


@pytest.fixture(scope="module")
def ill_conditioned():
    """The cartpole preset's ClipPPOLoss with normalize_advantage=True, and an example whose
    advantages have mean 5 and spread 1e-3."""
    from rlexport.models.factory import BuildSpec, build_module

    built = build_module(
        BuildSpec(preset="cartpole", loss="clip-ppo", options={"normalize_advantage": True}, batch=64)
    )
    example = dict(built.example)
    gen = torch.Generator().manual_seed(3)
    example["advantage"] = 5.0 + 1e-3 * torch.randn(example["advantage"].shape, generator=gen)
    return built.module, example


@pytest.fixture(scope="module")
def exported(ill_conditioned, tmp_path_factory):
    module, example = ill_conditioned
    return export_onnx(module, example, tmp_path_factory.mktemp("tol") / "loss.onnx")  # verifies


def test_eager_float32_itself_misses_the_default_atol(ill_conditioned):
    """The premise: float32 eager PyTorch, not the artifact, is what lands beyond 1e-5."""
    import copy

    module, example = ill_conditioned
    m64 = copy.deepcopy(module).double()
    with torch.no_grad():
        ref = dict(zip(module.out_keys, m64(**{k: v.double() if v.is_floating_point() else v for k, v in example.items()})))
        out = dict(zip(module.out_keys, module(**example)))
    err = float((out["loss_objective"].double() - ref["loss_objective"]).abs())
    assert err > F32_ATOL + F32_RTOL * float(ref["loss_objective"].abs())


def test_ill_conditioned_loss_verifies_and_validates(exported, ill_conditioned):
    assert exported.exists()
    report = validate(exported)
    assert report.passed, report.summary()
    row = next(r for r in report.rows if r.output == "loss_objective")
    assert row.atol > F32_ATOL  # the widened, recorded tolerance was used
    module, example = ill_conditioned
    report = validate(module, example, backends=["eager-float32", "onnx-cpu"])
    assert report.passed, report.summary()


def test_per_output_tolerances_recorded_in_index_json(exported):
    index = json.loads((exported.parent / "loss.golden" / "index.json").read_text())
    assert (index["rtol"], index["atol"]) == (F32_RTOL, F32_ATOL)  # top level: the defaults, as before
    assert index["tolerance_rule"]["factor"] == EAGER_ERROR_FACTOR
    for case in index["cases"]:
        for name, spec in case["outputs"].items():
            tol = spec["tolerance"]
            assert tol["rtol"] == F32_RTOL
            assert tol["atol"] == max(F32_ATOL, EAGER_ERROR_FACTOR * tol["eager_abs_err"])
    objective = index["cases"][0]["outputs"]["loss_objective"]["tolerance"]
    assert objective["atol"] > F32_ATOL
    critic = index["cases"][0]["outputs"]["loss_critic"]["tolerance"]
    assert critic["atol"] == F32_ATOL  # well-conditioned outputs keep the default
    sample = read_golden(exported)
    assert sample.tolerance(sample.cases[0], "loss_objective") == (objective["rtol"], objective["atol"])


def test_perturbed_artifact_of_the_same_loss_still_fails(exported, tmp_path):
    import shutil

    path = tmp_path / "loss.onnx"
    shutil.copy(exported, path)
    shutil.copy(exported.with_suffix(".json"), tmp_path / "loss.json")
    shutil.copytree(exported.parent / "loss.golden", tmp_path / "loss.golden")
    model = onnx.load(str(path))
    init = next(
        i for i in model.graph.initializer
        if onnx.numpy_helper.to_array(i).dtype.kind == "f" and onnx.numpy_helper.to_array(i).size > 1
    )
    arr = onnx.numpy_helper.to_array(init) * np.float32(1.03)  # a constant off by 3 %
    init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
    onnx.save(model, str(path))
    reseal(path)
    report = validate(path)
    assert not report.passed
    failing = {r.output for r in report.failures}
    assert failing
    assert all(f"'{name}'" in report.summary() for name in failing)


def test_swapped_outputs_of_the_same_loss_still_fail(exported, tmp_path):
    import shutil

    path = tmp_path / "loss.onnx"
    shutil.copy(exported, path)
    shutil.copytree(exported.parent / "loss.golden", tmp_path / "loss.golden")
    swap_onnx_outputs(path, "loss_critic", "entropy")
    report = validate(path)
    assert {r.output for r in report.failures} == {"loss_critic", "entropy"}


def test_float64_artifacts_are_unchanged(ill_conditioned, tmp_path):
    module, example = ill_conditioned
    path = export_onnx(module, example, tmp_path / "l64.onnx", dtype="float64")
    index = json.loads((tmp_path / "l64.golden" / "index.json").read_text())
    assert (index["rtol"], index["atol"]) == DEFAULT_TOLERANCES["float64"]
    assert "tolerance_rule" not in index
    assert all("tolerance" not in s for c in index["cases"] for s in c["outputs"].values())
    assert validate(path).passed


def test_output_tolerance_rule():
    assert output_tolerance("float32", None) == {"rtol": F32_RTOL, "atol": F32_ATOL}
    assert output_tolerance("float32", float("inf")) == {"rtol": F32_RTOL, "atol": F32_ATOL}
    assert output_tolerance("float32", 1e-8)["atol"] == F32_ATOL
    assert output_tolerance("float32", 1e-4)["atol"] == pytest.approx(EAGER_ERROR_FACTOR * 1e-4)


def test_golden_per_output_tolerance_round_trip(tmp_path):
    out = {"y": np.array([1.0, 2.0], dtype=np.float32), "z": np.array([3.0], dtype=np.float32)}
    root = write_golden(tmp_path / "x.golden", [("c", {"x": out["y"]}, out)], artifact="x.onnx",
                        rtol=1e-4, atol=1e-5, tolerances={"y": {"rtol": 1e-4, "atol": 3e-3}})
    sample = read_golden(root)
    assert sample.tolerance(sample.cases[0], "y") == (1e-4, 3e-3)
    assert sample.tolerance(sample.cases[0], "z") == (1e-4, 1e-5)  # no entry: the top level
