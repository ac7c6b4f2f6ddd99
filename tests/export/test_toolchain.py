"""The export toolchain on small modules: dynamic dims, golden samples, atomic writes, parity."""

from __future__ import annotations

import json
import os

import numpy as np
import onnx
import pytest
import torch
from export_toys import (
    LoopEstimator,
    SoftplusModule,
    ToyEstimator,
    ToyLoss,
    estimator_example,
    loss_example,
)
from tamper import reseal, swap_onnx_outputs

from rlexport.export import (
    ArtifactError,
    ExportError,
    export_onnx,
    export_program,
    export_torchscript,
    infer_dynamic_dims,
    load_artifact,
    read_golden,
    write_golden,
)
from rlexport.artifact.golden import GoldenError
from rlexport.runtime.onnx import provider_status
from rlexport.validate import validate


# ---------------------------------------------------------------- dynamic dims


def test_infer_dims_estimator_marks_batch_and_time():
    dims = infer_dynamic_dims(ToyEstimator(), estimator_example(4, 8))
    assert dims["next_reward"] == {0: "batch", 1: "time"}
    assert dims["observation"] == {0: "batch", 1: "time"}


def test_infer_dims_loss_marks_batch_only_and_leaves_scalars_static():
    ex = loss_example(6)
    ex["beta"] = torch.tensor(1.0)
    dims = infer_dynamic_dims(ToyLoss(), ex)
    assert dims["observation"] == {0: "batch"} and dims["action"] == {0: "batch"}
    assert "beta" not in dims


def test_infer_dims_time_without_time_dim_attribute_is_a_second_batch_dim():
    dims = infer_dynamic_dims(torch.nn.Identity(), {"x": torch.zeros(4, 5, 3), "y": torch.zeros(4, 5, 1)})
    assert dims["x"] == {0: "batch", 1: "batch_1"}


def test_dynamic_dims_hook_wins():
    class Hooked(ToyEstimator):
        def dynamic_dims(self, example):
            return {k: {0: "batch"} for k in example}

    from rlexport.export.plan import resolve_dynamic_dims

    dims = resolve_dynamic_dims(Hooked(), estimator_example(), True)
    assert dims["next_reward"] == {0: "batch"}


def test_size_one_dynamic_dim_is_refused():
    ex = estimator_example(1, 8)
    with pytest.raises(ValueError, match="at least 2"):
        export_program(ToyEstimator(), ex, dynamic={k: {0: "batch"} for k in ex})


# ---------------------------------------------------------------- ONNX


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_onnx_estimator_round_trip(tmp_path, dtype):
    path = export_onnx(ToyEstimator(), estimator_example(), tmp_path / "est.onnx", dtype=dtype)
    assert sorted(os.listdir(tmp_path)) == ["est.golden", "est.json", "est.onnx"]
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["rlexport.class"]).endswith("ToyEstimator")
    assert json.loads(props["rlexport.config"]) == {"gamma": 0.9, "time_dim": -2}
    assert json.loads(props["rlexport.out_keys"]) == ["advantage", "value_target"]
    assert json.loads(props["rlexport.dtype"]) == dtype
    assert json.loads(props["rlexport.dynamic_axes"])["next_reward"] == {"0": "batch", "1": "time"}
    assert "rlexport_version" in " ".join(props) and "torch_version" in " ".join(props)
    shape = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert shape == ["batch", "time", 1]
    assert [o.name for o in model.graph.output] == ["advantage", "value_target"]
    meta = json.loads((tmp_path / "est.json").read_text())
    assert meta["format"] == "onnx" and meta["dtype"] == dtype and meta["golden"] == "est.golden"
    sample = read_golden(tmp_path / "est.golden")
    batches = {c.inputs["next_reward"].shape[0] for c in sample.cases}
    horizons = {c.inputs["next_reward"].shape[1] for c in sample.cases}
    assert len(batches) >= 3 and len(horizons) >= 2
    assert all(c.outputs["advantage"].dtype == np.dtype(dtype) for c in sample.cases)
    report = validate(path)
    assert report.passed, report.summary()
    assert "onnx-cuda" in report.skipped or any(r.backend == "onnx-cuda" for r in report.rows)
    worst = max(r.max_abs for r in report.rows)
    assert worst < (1e-5 if dtype == "float32" else 1e-12)


def test_onnx_output_subset_and_order(tmp_path):
    path = export_onnx(ToyLoss(), loss_example(), tmp_path / "l.onnx", output_names=["loss_critic", "loss_objective"])
    assert load_artifact(path).output_names == ["loss_critic", "loss_objective"]
    assert validate(path).passed
    with pytest.raises(ValueError, match="not an output"):
        export_onnx(ToyLoss(), loss_example(), tmp_path / "m.onnx", output_names=["nope"])


def test_static_export_has_fixed_shapes(tmp_path):
    path = export_onnx(ToyLoss(), loss_example(), tmp_path / "s.onnx", dynamic=False)
    model = onnx.load(str(path))
    assert all(d.dim_value > 0 for d in model.graph.input[0].type.tensor_type.shape.dim)
    assert [c.name for c in read_golden(path).cases] == ["example"]
    assert validate(path).passed


def test_python_loop_over_time_is_refused_and_nothing_written(tmp_path):
    with pytest.raises(ExportError):
        export_onnx(LoopEstimator(), estimator_example(), tmp_path / "loop.onnx")
    with pytest.raises(ExportError, match="specialised|did not verify"):
        export_torchscript(LoopEstimator(), estimator_example(), tmp_path / "loop.pt")
    assert os.listdir(tmp_path) == []


def test_failed_export_keeps_previous_artifact(tmp_path):
    path = export_onnx(ToyEstimator(), estimator_example(), tmp_path / "est.onnx")
    before = path.read_bytes()
    with pytest.raises(ExportError):
        export_onnx(LoopEstimator(), estimator_example(), path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["est.golden", "est.json", "est.onnx"]
    assert validate(path).passed


def test_float64_softplus_failure_is_explained(tmp_path):
    x = {"x": torch.randn(4, 3)}
    with pytest.raises(ExportError, match="Softplus"):
        export_onnx(SoftplusModule(), x, tmp_path / "sp.onnx", dtype="float64")
    assert os.listdir(tmp_path) == []
    path = export_onnx(SoftplusModule(), x, tmp_path / "sp64.onnx", dtype="float64", verify=False)
    report = validate(path)
    assert not report.passed and "Softplus" in report.summary() and "float64" in report.summary()
    assert export_onnx(SoftplusModule(), x, tmp_path / "sp32.onnx")  # float32 is fine


# ---------------------------------------------------------------- other formats


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pt2_round_trip(tmp_path, dtype):
    torch.manual_seed(0)
    module = ToyEstimator()
    ep = export_program(module, estimator_example(), tmp_path / "est.pt2", dtype=dtype)
    assert list(ep.graph_signature.user_inputs) == list(estimator_example())
    assert validate(tmp_path / "est.pt2").passed
    loaded = torch.export.load(str(tmp_path / "est.pt2")).module()
    ex = estimator_example(batch=3, time=21, dtype=getattr(torch, dtype), seed=5)
    ref = module.to(getattr(torch, dtype))(**ex)
    for a, b in zip(loaded(*ex.values()), ref):
        torch.testing.assert_close(a, b)


def test_torchscript_of_loss_verifies(tmp_path):
    path = export_torchscript(ToyLoss(), loss_example(), tmp_path / "l.pt")
    assert load_artifact(path).format == "torchscript"
    assert validate(path).passed


@pytest.mark.slow
def test_aoti_package(tmp_path):
    from rlexport.export import export_aoti

    path = export_aoti(ToyLoss(), loss_example(), tmp_path / "l.aoti.pt2")
    assert load_artifact(path).format == "aoti"
    report = validate(path)
    assert report.passed, report.summary()


# ---------------------------------------------------------------- validate()


def test_validate_module_all_backends():
    report = validate(ToyEstimator(), estimator_example(), backends=["eager-float32", "pt2", "onnx-cpu", "torchscript", "eager-cuda"])
    assert report.passed, report.summary()
    assert {r.backend for r in report.rows} == {"eager-float32", "pt2", "onnx-cpu", "torchscript"} | (
        {"eager-cuda"} if torch.cuda.is_available() else set()
    )
    if not torch.cuda.is_available():
        assert report.skipped["eager-cuda"] == "no CUDA device"
    assert report.reference == "eager-float64"
    table = report.table()
    assert table.row_count >= 8


def _perturb_initializer(path, amount=0.5, seal=True):
    model = onnx.load(str(path))
    for init in model.graph.initializer:
        arr = onnx.numpy_helper.to_array(init).copy()
        if arr.size > 1 and arr.dtype.kind == "f":
            arr.flat[0] += amount
            init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
            break
    else:
        raise AssertionError("no float initializer")
    onnx.save(model, str(path))
    if seal:
        reseal(path)


def test_validate_catches_perturbed_constant(tmp_path):
    path = export_onnx(ToyLoss(), loss_example(), tmp_path / "l.onnx")
    _perturb_initializer(path)
    report = validate(path)
    assert not report.passed
    failing = {r.output for r in report.failures}
    assert failing & {"loss_objective", "loss_entropy", "loss_critic"}
    assert any(name in report.summary() for name in failing)


def test_validate_catches_swapped_outputs(tmp_path):
    path = export_onnx(ToyEstimator(), estimator_example(), tmp_path / "e.onnx")
    swap_onnx_outputs(path, "advantage", "value_target")
    report = validate(path)
    assert {r.output for r in report.failures} == {"advantage", "value_target"}
    assert "'advantage'" in report.summary()


def test_validate_with_overridden_tolerance(tmp_path):
    path = export_onnx(ToyLoss(), loss_example(), tmp_path / "l.onnx")
    _perturb_initializer(path, amount=1e-3)
    assert not validate(path).passed
    assert validate(path, rtol=0.5, atol=0.5).passed
    with pytest.raises(ValueError, match="rtol=10.0 must be finite, >= 0 and <= 0.5"):
        validate(path, rtol=10.0, atol=10.0)


def test_a_tampered_model_file_is_refused_by_its_digest(tmp_path):
    path = export_onnx(ToyLoss(), loss_example(), tmp_path / "l.onnx")
    _perturb_initializer(path, seal=False)
    with pytest.raises(ArtifactError, match="the model file does not match l.json"):
        validate(path)


@pytest.mark.cuda
def test_cuda_backends_run_when_there_is_a_gpu(tmp_path):
    reason = "no CUDA device" if not torch.cuda.is_available() else provider_status("cuda")
    if reason is not None:
        pytest.skip(f"onnx-cuda cannot run here: {reason}")
    path = export_onnx(ToyEstimator(), estimator_example(), tmp_path / "e.onnx")
    report = validate(path, backends=["onnx-cuda", "pt2-cuda"])
    assert not report.skipped and {r.backend for r in report.rows} == {"onnx-cuda", "pt2-cuda"}
    assert report.passed, report.summary()
    module_report = validate(ToyEstimator(), estimator_example(), backends=["eager-cuda"])
    assert not module_report.skipped and module_report.passed, module_report.summary()


# ---------------------------------------------------------------- golden format


def test_golden_round_trip_and_errors(tmp_path):
    inputs = {
        "f": np.arange(6, dtype=np.float32).reshape(2, 3),
        "d": np.linspace(0, 1, 4),
        "i": np.array([1, -2], dtype=np.int64),
        "j": np.array([[3]], dtype=np.int32),
        "b": np.array([True, False, True]),
    }
    outputs = {"y": torch.tensor([1.5, 2.5])}
    root = write_golden(tmp_path / "x.golden", [("c1", inputs, outputs)], artifact="x.onnx", rtol=1e-5, atol=1e-6)
    assert (root / "c1" / "b.bin").stat().st_size == 3
    assert (root / "c1" / "out.y.bin").read_bytes() == np.array([1.5, 2.5], "<f4").tobytes()
    index = json.loads((root / "index.json").read_text())
    assert index["format"] == "rlexport-golden" and index["version"] == 1 and index["kind"] == "forward"
    assert index["cases"][0]["inputs"]["b"] == {"dtype": "bool", "shape": [3], "file": "c1/b.bin"}
    sample = read_golden(root)
    for k, v in inputs.items():
        np.testing.assert_array_equal(sample.cases[0].inputs[k], v)
        assert sample.cases[0].inputs[k].dtype == v.dtype
    (root / "c1" / "f.bin").write_bytes(b"\0" * 4)
    with pytest.raises(GoldenError, match="f.bin"):
        read_golden(root)
    with pytest.raises(GoldenError, match="no golden sample"):
        read_golden(tmp_path / "missing.golden")


def test_golden_train_step_fields(tmp_path):
    root = write_golden(
        tmp_path / "t.golden",
        [("step0", {"x": np.ones(2, np.float32)}, {"p_next": np.zeros(2, np.float32)})],
        artifact="t.onnx", kind="train_step", rtol=1e-5, atol=1e-6,
        state={"p": "p_next"}, initial_state={"p": np.ones(2, np.float32)},
    )
    sample = read_golden(root)
    assert sample.kind == "train_step" and sample.state == {"p": "p_next"}
    np.testing.assert_array_equal(sample.initial_state["p"], np.ones(2, np.float32))
