"""Every estimator x dtype, and a loss with in-graph GAE: ONNX + .pt2 at two horizons (see real_helpers)."""

from __future__ import annotations

import pytest
from real_helpers import DTYPES, ESTIMATORS, LOSSES, PRESETS, _export_and_validate, _need  # noqa: F401


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_estimator_exports_and_validates(tmp_path, estimator, dtype):
    from rlexport.export.build import ESTIMATORS as NAMES
    from rlexport.export.build import BuildSpec, build_module

    _need("rlexport.value", NAMES[estimator])
    built = build_module(BuildSpec(preset="pendulum", estimator=estimator, batch=4, time=12))
    dims = built.module.dynamic_dims(built.example) if hasattr(built.module, "dynamic_dims") else None
    from rlexport.export.common import resolve_dynamic_dims

    dims = resolve_dynamic_dims(built.module, built.example, True)
    assert "time" in dims["next_reward"].values()
    _export_and_validate(built, tmp_path, dtype, time_axis=True)


@pytest.mark.parametrize("preset", ["pendulum"])
def test_loss_with_in_graph_gae_has_time_axis(tmp_path, preset):
    _need("rlexport.objectives", "ClipPPOLoss")
    _need("rlexport.value", "GAE")
    from rlexport.export.build import BuildSpec, build_module
    from rlexport.export.common import resolve_dynamic_dims

    built = build_module(BuildSpec(preset=preset, loss="clip-ppo", estimator="gae", batch=4, time=10))
    assert "advantage" not in built.example
    dims = resolve_dynamic_dims(built.module, built.example, True)
    assert dims["observation"] == {0: "batch", 1: "time"}
    _export_and_validate(built, tmp_path, "float32", time_axis=True)
