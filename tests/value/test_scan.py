"""reverse_linear_recurrence: exactness vs a float64 loop, eager and traced (bounded, NaN beyond)."""

from __future__ import annotations

import pytest
import torch

import helpers as ref
from helpers import assert_close
from rlexport.value.scan import DEFAULT_MAX_STEPS, max_horizon, reverse_linear_recurrence


@pytest.mark.parametrize("T", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 63, 64, 65, 1000])
def test_matches_loop_float64(T):
    gen = torch.Generator().manual_seed(T)
    x = torch.randn(3, T, 2, generator=gen, dtype=torch.float64)
    a = torch.rand(3, T, 2, generator=gen, dtype=torch.float64)
    a[a < 0.1] = 0.0  # cuts
    assert_close(reverse_linear_recurrence(x, a), ref.recurrence(x, a), "loop")


def test_time_dim_and_float32():
    x = torch.randn(5, 2, 30)
    a = torch.rand(5, 2, 30)
    y = reverse_linear_recurrence(x, a, time_dim=-1)
    expect = ref.recurrence(x.double().transpose(-1, -2), a.double().transpose(-1, -2)).transpose(-1, -2)
    assert y.dtype == torch.float32
    assert_close(y.double(), expect, "float32-vs-float64")


def test_bounds_documented():
    assert max_horizon() == 2**DEFAULT_MAX_STEPS >= 100_000


def test_bad_inputs():
    x = torch.randn(2, 4, 1)
    with pytest.raises(ValueError, match=r"'a' has shape \[2, 3, 1\]"):
        reverse_linear_recurrence(x, x[:, :3])
    with pytest.raises(ValueError, match="empty"):
        reverse_linear_recurrence(x[:, :0], x[:, :0])
    with pytest.raises(ValueError, match="time_dim=3 is out of range"):
        reverse_linear_recurrence(x, x, time_dim=3)
    with pytest.raises(TypeError, match="floating"):
        reverse_linear_recurrence(x.long(), x.long())
    with pytest.raises(ValueError, match="max_steps"):
        reverse_linear_recurrence(x, x, max_steps=0)


class _Scan(torch.nn.Module):
    def __init__(self, max_steps):
        super().__init__()
        self.max_steps = max_steps

    def forward(self, x, a):
        return reverse_linear_recurrence(x, a, max_steps=self.max_steps)


def test_traced_one_graph_all_horizons_nan_beyond_bound():
    """One exported graph serves every T up to 2**max_steps exactly and gives NaN beyond."""
    B, T = torch.export.Dim("B"), torch.export.Dim("T")
    x = torch.randn(2, 5, 1, dtype=torch.float64)
    ep = torch.export.export(_Scan(9), (x, torch.rand_like(x)), dynamic_shapes=({0: B, 1: T}, {0: B, 1: T}))
    run = ep.module()
    for b, t in [(1, 1), (3, 2), (2, 129), (1, 300), (2, 512)]:
        x = torch.randn(b, t, 1, dtype=torch.float64)
        a = torch.rand(b, t, 1, dtype=torch.float64)
        assert_close(run(x, a), ref.recurrence(x, a), "loop")
    beyond = run(torch.randn(1, 513, 1, dtype=torch.float64), torch.rand(1, 513, 1, dtype=torch.float64))
    assert torch.isnan(beyond).all()
