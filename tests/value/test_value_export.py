"""Every estimator module exports (torch.export and ONNX) with a dynamic batch and time axis and
matches eager at other batch sizes and horizons (T=1 and a long T), in float32 and float64.

ONNX exports use ``max_steps=9`` (horizons up to 512) to keep the test fast; the default bound
(2**20) is exercised by ``rlexport check-estimator`` and the benchmark.
"""

from __future__ import annotations

import onnx
import pytest
import torch
from torch import nn

from helpers import assert_close

from rlexport.value import GAE
from rlexport.value.onnx_check import ESTIMATOR_NAMES, Positional, dynamic_shapes, build_estimator, example_inputs, export_onnx, ort_session, run_ort

SIZES = [(1, 1), (5, 37), (2, 500)]  # (batch, horizon): none equal to the example (3, 16)
# each estimator once, both dtypes covered (GAE in both)
ONNX_CASES = [("gae", torch.float32), ("gae", torch.float64), ("td0", torch.float64), ("td1", torch.float32),
              ("td-lambda", torch.float64), ("vtrace", torch.float32)]


@pytest.mark.parametrize("name,dtype", ONNX_CASES)
def test_onnx_roundtrip(name, dtype, tmp_path):
    est = build_estimator(name, gamma=0.97, lmbda=0.9, max_steps=9)
    path = export_onnx(est, example_inputs(est, 3, 16, dtype), tmp_path / f"{name}.onnx")
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert [o.name for o in model.graph.output] == ["advantage", "value_target"]
    session = ort_session(path)
    assert {i.name for i in session.get_inputs()} <= set(example_inputs(est, 1, 1, dtype))
    for b, t in SIZES:
        inputs = example_inputs(est, b, t, dtype, seed=b * 1000 + t)
        got = run_ort(session, inputs)
        adv, target = est(**inputs)
        assert_close(torch.from_numpy(got["advantage"]), adv, "onnx", "advantage")
        assert_close(torch.from_numpy(got["value_target"]), target, "onnx", "value_target")


class _Value(nn.Module):
    in_keys = ["observation"]

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 1)

    def forward(self, observation):
        return self.lin(observation)


@pytest.mark.parametrize("name", ESTIMATOR_NAMES)
def test_torch_export_dynamic(name):
    est = build_estimator(name, max_steps=9)
    example = example_inputs(est, 3, 16, torch.float64)
    names = list(example)
    ep = torch.export.export(Positional(est, names), tuple(example.values()), dynamic_shapes=dynamic_shapes(names))
    for b, t in SIZES:
        inputs = example_inputs(est, b, t, torch.float64, seed=t)
        for x, y in zip(ep.module()(*(inputs[n] for n in names)), est(**inputs)):
            assert torch.equal(x, y), (b, t)  # the traced scan's extra steps add exact zeros


def test_torch_export_with_value_network():
    est = GAE(gamma=0.99, lmbda=0.95, value_network=_Value(), max_steps=9)
    mk = lambda b, t: dict(  # noqa: E731
        observation=torch.randn(b, t, 4), next_observation=torch.randn(b, t, 4), next_reward=torch.randn(b, t, 1),
        next_done=torch.rand(b, t, 1) < 0.1, next_terminated=torch.zeros(b, t, 1, dtype=torch.bool))
    example = mk(3, 16)
    names = list(example)
    ep = torch.export.export(Positional(est, names), tuple(example.values()), dynamic_shapes=dynamic_shapes(names))
    for b, t in SIZES:
        inputs = mk(b, t)
        for x, y in zip(ep.module()(*(inputs[n] for n in names)), est(**inputs)):
            assert torch.equal(x, y), (b, t)
