"""rlexport.value.functional against a float64 step loop (TOL's "loop" row) and TorchRL 0.14.1.

TorchRL's float64 results round gamma to float32 (``(~done).int() * gamma``, ~3e-7 relative), so
most TorchRL comparisons use TOL's "torchrl-float32-constants" row.
"""

from __future__ import annotations

import pytest
import torch
import torchrl.objectives.value.functional as R
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rlexport.value.functional as O
import helpers as ref
from helpers import assert_close

SHAPES = [(7, 1), (3, 9, 1), (2, 3, 5, 1), (1, 1), (4, 1, 1)]  # batch none/[B]/[B1,B2], T=1
TIGHT = "loop"
LOOSE = "torchrl-float32-constants"
F32 = "float32-vs-float64"


def close(a, b, kind):
    assert_close(a, b, kind)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("pattern", ref.DONE_PATTERNS)
def test_gae(shape, pattern):
    r, v, nv, done, term = ref.data(shape, pattern=pattern)
    out = O.generalized_advantage_estimate(0.97, 0.9, v, nv, r, done, term)
    close(out, ref.gae(0.97, 0.9, v, nv, r, done, term), TIGHT)
    close(out, R.generalized_advantage_estimate(0.97, 0.9, v, nv, r, done, term), LOOSE)
    close(out, R.vec_generalized_advantage_estimate(0.97, 0.9, v, nv, r, done, term), LOOSE)
    # terminated defaults to done
    close(O.generalized_advantage_estimate(0.97, 0.9, v, nv, r, done), ref.gae(0.97, 0.9, v, nv, r, done, done), TIGHT)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("pattern", ref.DONE_PATTERNS)
def test_td_lambda_td1_td0(shape, pattern):
    r, v, nv, done, term = ref.data(shape, pattern=pattern, seed=1)
    lam = O.td_lambda_return_estimate(0.95, 0.7, nv, r, done, term)
    close(lam, ref.td_lambda(0.95, 0.7, nv, r, done, term), TIGHT)
    close(lam, R.td_lambda_return_estimate(0.95, 0.7, nv, r, done, term), LOOSE)
    close(lam, R.vec_td_lambda_return_estimate(0.95, 0.7, nv, r, done, term), LOOSE)
    close(O.td_lambda_advantage_estimate(0.95, 0.7, v, nv, r, done, term), lam - v, TIGHT)
    one = O.td1_return_estimate(0.95, nv, r, done, term)
    close(one, ref.td_lambda(0.95, 1.0, nv, r, done, term), TIGHT)
    close(one, R.td1_return_estimate(0.95, nv, r, done, term), LOOSE)
    close(O.td1_advantage_estimate(0.95, v, nv, r, done, term), R.td1_advantage_estimate(0.95, v, nv, r, done, term), LOOSE)
    close(O.td0_return_estimate(0.95, nv, r, term), R.td0_return_estimate(0.95, nv, r, term), LOOSE)
    close(O.td0_advantage_estimate(0.95, v, nv, r, done, term), R.td0_advantage_estimate(0.95, v, nv, r, done, term), LOOSE)
    close(O.td0_return_estimate(0.95, nv, r, done=term), r + 0.95 * (~term).double() * nv, TIGHT)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("pattern", ref.DONE_PATTERNS)
def test_vtrace(shape, pattern):
    r, v, nv, done, term = ref.data(shape, pattern=pattern, seed=2)
    gen = torch.Generator().manual_seed(5)
    lp, lm = (0.5 * torch.randn(shape, generator=gen, dtype=torch.float64) for _ in range(2))
    out = O.vtrace_advantage_estimate(0.9, lp, lm, v, nv, r, done, term, 1.0, 0.8)
    close(out, ref.vtrace(0.9, lp, lm, v, nv, r, done, term, 1.0, 0.8), TIGHT)
    # TorchRL 0.14.1 already carries the #4209 fix (no bootstrap from the next episode's vs at
    # an in-batch truncation), so it is compared directly.
    close(out, R.vtrace_advantage_estimate(0.9, lp, lm, v, nv, r, done, term, 1.0, 0.8), LOOSE)


def test_vtrace_truncation_does_not_leak_next_episode():
    """At an in-batch truncation the target bootstraps from V'(s_{t+1}), not the next episode."""
    T = 4
    r = torch.zeros(T, 1, dtype=torch.float64)
    v = torch.zeros(T, 1, dtype=torch.float64)
    nv = torch.zeros(T, 1, dtype=torch.float64)
    nv[1] = 5.0
    v[2] = 100.0  # the next episode's first value
    done = torch.zeros(T, 1, dtype=torch.bool)
    done[1] = True  # truncated (not terminated) at t=1
    zero = torch.zeros(T, 1, dtype=torch.float64)
    adv, vs = O.vtrace_advantage_estimate(0.5, zero, zero, v, nv, r, done, torch.zeros_like(done))
    assert adv[1, 0].item() == pytest.approx(0.5 * 5.0)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("pattern", ["random", "first", "last"])
def test_reward2go(shape, pattern):
    r, _, _, done, _ = ref.data(shape, pattern=pattern, seed=3)
    out = O.reward2go(r, done, 0.9)
    close(out, ref.reward2go(r, done, 0.9), TIGHT)
    close(out, R.reward2go(r, done, 0.9), TIGHT)


def test_reward2go_1d_time_last():
    r, _, _, done, _ = ref.data((12, 1), seed=4)
    close(O.reward2go(r[:, 0], done[:, 0], 0.8, time_dim=-1), R.reward2go(r[:, 0], done[:, 0], 0.8, time_dim=-1).reshape(12), TIGHT)


@pytest.mark.parametrize("time_dim", [0, 1, -3])
def test_other_time_dim(time_dim):
    r, v, nv, done, term = ref.data((3, 8, 2, 1), seed=6)  # time at dim 1 in the data
    move = lambda x: x.movedim(1, time_dim)  # noqa: E731
    out = O.generalized_advantage_estimate(0.9, 0.8, *map(move, (v, nv, r, done, term)), time_dim=time_dim)
    expect = ref.gae(0.9, 0.8, *(z.movedim(1, -2) for z in (v, nv, r, done, term)))
    close(tuple(o.movedim(time_dim, -2) for o in out), expect, TIGHT)
    kw = dict(time_dim=time_dim)
    close(O.td_lambda_return_estimate(0.9, 0.8, move(nv), move(r), move(done), move(term), **kw),
          R.td_lambda_return_estimate(0.9, 0.8, move(nv), move(r), move(done), move(term), **kw), LOOSE)
    gen = torch.Generator().manual_seed(0)
    lp, lm = (torch.randn(3, 8, 2, 1, generator=gen, dtype=torch.float64) for _ in range(2))
    close(O.vtrace_advantage_estimate(0.9, move(lp), move(lm), move(v), move(nv), move(r), move(done), move(term), time_dim=time_dim),
          R.vtrace_advantage_estimate(0.9, move(lp), move(lm), move(v), move(nv), move(r), move(done), move(term), time_dim=time_dim), LOOSE)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtypes_and_tensor_gamma(dtype):
    r, v, nv, done, term = ref.data((4, 20, 1), dtype=dtype, seed=7)
    expect = ref.gae(0.99, 0.95, *(z.double() if z.is_floating_point() else z for z in (v, nv, r, done, term)))
    for gamma in (0.99, torch.tensor(0.99, dtype=torch.float64), torch.tensor([0.99], dtype=torch.float64)):
        out = O.generalized_advantage_estimate(gamma, torch.tensor(0.95, dtype=torch.float64), v, nv, r, done, term)
        assert out[0].dtype == dtype
        close(out, expect, TIGHT if dtype == torch.float64 else F32)
    # a float32 tensor gamma is accepted (and carries float32 rounding, like TorchRL's)
    close(O.generalized_advantage_estimate(torch.tensor(0.99), 0.95, v, nv, r, done, term), expect, F32)


def test_per_step_gamma_and_lambda():
    r, v, nv, done, term = ref.data((3, 11, 1), seed=8)
    gen = torch.Generator().manual_seed(1)
    g = 0.5 + 0.5 * torch.rand(3, 11, 1, generator=gen, dtype=torch.float64)
    lam = torch.rand(3, 11, 1, generator=gen, dtype=torch.float64)
    close(O.generalized_advantage_estimate(g, lam, v, nv, r, done, term), ref.gae(g, lam, v, nv, r, done, term), TIGHT)
    close(O.generalized_advantage_estimate(g, lam, v, nv, r, done, term), R.generalized_advantage_estimate(g, lam, v, nv, r, done, term), TIGHT)
    close(O.td_lambda_return_estimate(g, lam, nv, r, done, term), R.td_lambda_return_estimate(g, lam, nv, r, done, term), TIGHT)
    close(O.td_lambda_return_estimate(g, 0.7, nv, r, done, term), R.vec_td_lambda_return_estimate(g, 0.7, nv, r, done, term), LOOSE)
    # rolling_gamma=False: gamma_k / lmbda_k for the whole of G_k
    nr = O.td_lambda_return_estimate(g, lam, nv, r, done, term, rolling_gamma=False)
    close(nr, ref.td_lambda_nonrolling(g, lam, nv, r, done, term), TIGHT)
    close(nr, R.td_lambda_return_estimate(g, lam, nv, r, done, term, rolling_gamma=False), TIGHT)
    # TD(1) rolling_gamma=False: TorchRL 0.14.1's loop starts from 0 instead of bootstrapping at
    # the last step (unlike its rolling and TD(lambda) versions); we bootstrap, so compare to the
    # float64 loop with lambda = 1.
    close(O.td1_return_estimate(g, nv, r, done, term, rolling_gamma=False),
          ref.td_lambda_nonrolling(g, 1.0, nv, r, done, term), TIGHT)
    close(O.reward2go(r, done, g), ref.reward2go(r, done, g), TIGHT)


def test_gradients_match_loop():
    r, v, nv, done, term = ref.data((2, 9, 1), seed=9)
    leaves = [x.clone().requires_grad_() for x in (v, nv, r)]
    (O.generalized_advantage_estimate(0.9, 0.8, *leaves, done, term)[0] ** 2).sum().backward()
    leaves_ref = [x.clone().requires_grad_() for x in (v, nv, r)]
    (ref.gae(0.9, 0.8, *leaves_ref, done, term)[0] ** 2).sum().backward()
    for a, b in zip(leaves, leaves_ref):
        close(a.grad, b.grad, TIGHT)
    g = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    g_ref = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    O.td_lambda_return_estimate(g, 0.7, nv, r, done, term).sum().backward()
    ref.td_lambda(g_ref, 0.7, nv, r, done, term).sum().backward()
    close(g.grad, g_ref.grad, TIGHT)
    lp = torch.randn(2, 9, 1, dtype=torch.float64, requires_grad=True)
    lp_ref = lp.detach().clone().requires_grad_()
    O.vtrace_advantage_estimate(0.9, lp, torch.zeros_like(r), v, nv, r, done, term)[0].sum().backward()
    ref.vtrace(0.9, lp_ref, torch.zeros_like(r), v, nv, r, done, term)[0].sum().backward()
    close(lp.grad, lp_ref.grad, TIGHT)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batch=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    T=st.integers(1, 40),
    gamma=st.floats(0.0, 1.0, allow_subnormal=False),
    lmbda=st.floats(0.0, 1.0, allow_subnormal=False),
    p_done=st.floats(0.0, 1.0, allow_subnormal=False),
    seed=st.integers(0, 2**16),
)
def test_property_against_loop(batch, T, gamma, lmbda, p_done, seed):
    shape = (*batch, T, 1)
    gen = torch.Generator().manual_seed(seed)
    r, v, nv = (torch.randn(shape, generator=gen, dtype=torch.float64) for _ in range(3))
    done = torch.rand(shape, generator=gen) < p_done
    term = done & (torch.rand(shape, generator=gen) < 0.5)
    close(O.generalized_advantage_estimate(gamma, lmbda, v, nv, r, done, term), ref.gae(gamma, lmbda, v, nv, r, done, term), torch.float64)
    close(O.td_lambda_return_estimate(gamma, lmbda, nv, r, done, term), ref.td_lambda(gamma, lmbda, nv, r, done, term), torch.float64)
    lp = torch.randn(shape, generator=gen, dtype=torch.float64)
    close(O.vtrace_advantage_estimate(gamma, lp, torch.zeros_like(lp), v, nv, r, done, term),
          ref.vtrace(gamma, lp, torch.zeros_like(lp), v, nv, r, done, term), torch.float64)


# -- bad input -------------------------------------------------------------------------------


def test_bad_inputs():
    r, v, nv, done, term = ref.data((2, 5, 1))
    with pytest.raises(ValueError, match=r"'next_state_value' has shape \[2, 4, 1\]"):
        O.generalized_advantage_estimate(0.9, 0.9, v, nv[:, :4], r, done, term)
    with pytest.raises(ValueError, match="empty"):
        O.generalized_advantage_estimate(0.9, 0.9, v[:, :0], nv[:, :0], r[:, :0], done[:, :0], term[:, :0])
    with pytest.raises(ValueError, match="time_dim=5 is out of range"):
        O.td_lambda_return_estimate(0.9, 0.9, nv, r, done, term, time_dim=5)
    with pytest.raises(TypeError, match="'done' must be a bool tensor"):
        O.generalized_advantage_estimate(0.9, 0.9, v, nv, r, done.double(), term)
    with pytest.raises(TypeError, match="'terminated' must be a bool tensor"):
        O.td0_return_estimate(0.9, nv, r, term.float())
    with pytest.raises(ValueError, match=r"gamma=nan is out of range; expected a finite value in \[0.0, 1.0\]"):
        O.generalized_advantage_estimate(float("nan"), 0.9, v, nv, r, done, term)
    # a tensor's values are not checked (data-dependent): non-finite in, non-finite out
    assert not torch.isfinite(O.td_lambda_return_estimate(0.9, torch.tensor(float("inf")), nv, r, done, term)).all()
    with pytest.raises(ValueError, match=r"gamma has shape \[3\]"):
        O.reward2go(r, done, torch.ones(3))
    with pytest.raises(ValueError, match="rolling_gamma=False"):
        O.td_lambda_return_estimate(0.9, 0.9, nv, r, done, term, rolling_gamma=False)
    with pytest.raises(TypeError, match="dtype"):
        O.generalized_advantage_estimate(0.9, 0.9, v.float(), nv, r, done, term)
    with pytest.raises(TypeError, match="missing input 'terminated'"):
        O.td0_return_estimate(0.9, nv, r)


def test_nan_next_state_value_at_terminated_steps_is_selected_away():
    """A NaN (or inf) V' at a terminated step drops out of every estimator: the estimates equal
    those with 0 there, bit for bit (masking by multiplication would give NaN everywhere)."""
    r, v, nv, done, term = ref.data((2, 7, 1), pattern="random", seed=4)
    term = term.clone()
    term[0, 3] = term[1, 6] = True
    done = done | term
    clean = torch.where(term, torch.zeros_like(nv), nv)
    bad = torch.where(term, torch.full_like(nv, float("nan")), nv)
    bad[1, 6] = float("inf")
    lp = torch.randn(2, 7, 1, dtype=torch.float64)
    calls = [
        lambda nv: O.generalized_advantage_estimate(0.9, 0.8, v, nv, r, done, term),
        lambda nv: O.td0_return_estimate(0.9, nv, r, term),
        lambda nv: O.td0_advantage_estimate(0.9, v, nv, r, done, term),
        lambda nv: O.td1_return_estimate(0.9, nv, r, done, term),
        lambda nv: O.td_lambda_return_estimate(0.9, 0.8, nv, r, done, term),
        lambda nv: O.td_lambda_return_estimate(torch.full_like(r, 0.9), 0.8, nv, r, done, term, rolling_gamma=False),
        lambda nv: O.vtrace_advantage_estimate(0.9, lp, torch.zeros_like(lp), v, nv, r, done, term),
    ]
    for call in calls:
        got, want = call(bad), call(clean)
        for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
            assert torch.isfinite(g).all() and torch.equal(g, w)
    close(O.generalized_advantage_estimate(0.9, 0.8, v, bad, r, done, term), ref.gae(0.9, 0.8, v, clean, r, done, term), TIGHT)
