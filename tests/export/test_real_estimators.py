"""Every estimator x dtype, and a loss with in-graph GAE: ONNX + .pt2 at two horizons (see real_helpers)."""

from __future__ import annotations

import pytest
from real_helpers import DTYPES, ESTIMATORS, _export_and_validate

# The golden horizons are T, 2T+3 and T/2 (at most 27 here): 5 doubling steps (T <= 32) cover them
# and keep each export a few seconds; the default 20 steps (T <= 2**20) is exported by
# tests/value/test_value_export.py and the check-estimator CLI test.
MAX_STEPS = 5


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_estimator_exports_and_validates(tmp_path, estimator, dtype):
    from rlexport.export.plan import resolve_dynamic_dims
    from rlexport.models.factory import BuildSpec, build_module

    built = build_module(
        BuildSpec(preset="pendulum", estimator=estimator, batch=4, time=12, estimator_options={"max_steps": MAX_STEPS})
    )

    dims = resolve_dynamic_dims(built.module, built.example, True)
    assert "time" in dims["next_reward"].values()
    _export_and_validate(built, tmp_path, dtype, time_axis=True)


@pytest.mark.parametrize("preset", ["pendulum"])
def test_loss_with_in_graph_gae_has_time_axis(tmp_path, preset):
    from rlexport.export.plan import resolve_dynamic_dims
    from rlexport.models.factory import BuildSpec, build_module

    built = build_module(
        BuildSpec(preset=preset, loss="clip-ppo", estimator="gae", batch=4, time=10, estimator_options={"max_steps": MAX_STEPS})
    )
    assert "advantage" not in built.example
    dims = resolve_dynamic_dims(built.module, built.example, True)
    assert dims["observation"] == {0: "batch", 1: "time"}
    _export_and_validate(built, tmp_path, "float32", time_axis=True)
