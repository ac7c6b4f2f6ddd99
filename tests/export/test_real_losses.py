"""Every loss x distribution (preset) x dtype: ONNX + .pt2, validated (see real_helpers)."""

from __future__ import annotations

import pytest
from real_helpers import DTYPES, LOSSES, PRESETS, _export_and_validate


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("loss", LOSSES)
def test_loss_exports_and_validates(tmp_path, loss, preset, dtype):
    from rlexport.models.factory import BuildSpec, build_module

    built = build_module(BuildSpec(preset=preset, loss=loss, batch=6))
    _export_and_validate(built, tmp_path, dtype, time_axis=False)


