"""Shared by test_real_losses.py / test_real_estimators.py: every loss × every distribution (via the presets: cartpole Categorical, pendulum TanhNormal,
mujoco IndependentNormal) and every estimator, in float32 and float64, exported to ONNX and
.pt2 and validated on ONNX Runtime CPU at three batch sizes (two horizons with a time axis).

Each export verifies itself at the golden cases (the example batch, 2B+1 and 1; horizons T,
2T+3 and T/2 when there is a time axis) before writing; ``validate`` then re-checks the written
files from their golden samples alone.
"""

from __future__ import annotations

LOSSES = ["clip-ppo", "ppo", "kl-ppo", "a2c"]
PRESETS = ["cartpole", "pendulum", "mujoco"]  # Categorical, TanhNormal, IndependentNormal
ESTIMATORS = ["gae", "td0", "td1", "td-lambda", "vtrace"]
DTYPES = ["float32", "float64"]


def _export_and_validate(built, tmp_path, dtype, *, time_axis: bool):
    from rlexport.export import export_onnx, export_program, read_golden
    from rlexport.validate import validate

    name = built.spec.description
    onnx_path = export_onnx(built.module, built.example, tmp_path / f"{name}.onnx", dtype=dtype)
    pt2_path = tmp_path / "pt2" / f"{name}.pt2"  # X.json / X.golden are per stem: own directory
    export_program(built.module, built.example, pt2_path, dtype=dtype)
    for path, backend in ((onnx_path, "onnx-cpu"), (pt2_path, "pt2")):
        report = validate(path, backends=[backend])
        assert report.passed, report.summary()
        assert len(report.rows) == len(built.module.out_keys)
    sample = read_golden(onnx_path)
    ref_input = next(k for k in ("observation", "next_reward") if k in built.example)
    shapes = [c.inputs[ref_input].shape for c in sample.cases]
    assert len({s[0] for s in shapes}) >= 3, shapes
    if time_axis:
        assert len({s[1] for s in shapes}) >= 2, shapes
    return report


