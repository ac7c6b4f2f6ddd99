"""Distributions vs TorchRL 0.14.1 and torch.distributions: values and gradients, float32/float64."""

from __future__ import annotations

import pytest
import torch
from helpers import assert_close, check
from torch import distributions as D
from torch.distributions.utils import _standard_normal
from torchrl.modules import Delta as RLDelta
from torchrl.modules import IndependentNormal as RLIndependentNormal
from torchrl.modules import OneHotCategorical as RLOneHotCategorical
from torchrl.modules import TanhNormal as RLTanhNormal

from rlexport.modules import (
    Categorical,
    Delta,
    IndependentNormal,
    Normal,
    OneHotCategorical,
    TanhNormal,
    atanh,
    softplus,
)

DTYPES = [torch.float32, torch.float64]
B, N = (4, 3), 5


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def randn(*shape, dtype, seed=0, scale=1.0):
    return torch.randn(shape, generator=gen(seed), dtype=dtype) * scale


# --------------------------------------------------------------------------------------------
# Categorical / OneHotCategorical
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("param", ["logits", "probs"])
def test_categorical_vs_torch(dtype, param):
    raw = randn(*B, N, dtype=dtype, scale=2.0)
    if param == "probs":
        raw = raw.softmax(-1) * 3.0  # unnormalised probabilities
    value = torch.randint(0, N, B, generator=gen(1))

    def run(cls):
        def f(p):
            d = cls(**{param: p})
            return d.log_prob(value), d.entropy(), d.probs, d.logits
        return f

    ref_cls = lambda **kw: D.Categorical(**kw, validate_args=False)  # noqa: E731
    check(run(Categorical), run(ref_cls), {"p": raw})
    d, r = Categorical(**{param: raw}), ref_cls(**{param: raw})
    assert torch.equal(d.mode, r.mode) and torch.equal(d.deterministic_sample, r.mode)
    assert d.batch_shape == r.batch_shape and d.event_shape == r.event_shape
    assert d.has_rsample is False and torch.isnan(d.mean).all() and d.mean.shape == r.mean.shape
    # log-prob of a sample drawn with a leading sample shape broadcasts like torch
    v2 = torch.randint(0, N, (2, *B), generator=gen(2))
    torch.testing.assert_close(d.log_prob(v2), r.log_prob(v2))


@pytest.mark.parametrize("dtype", DTYPES)
def test_categorical_sample_with_uniform_noise(dtype):
    probs = torch.tensor([0.1, 0.0, 0.6, 0.3], dtype=dtype)
    d = Categorical(probs=probs.expand(3, 4))
    n = 1000
    u = ((torch.arange(n, dtype=dtype) + 0.5) / n).unsqueeze(-1).expand(n, 3)
    s = d.sample((n,), noise=u)
    assert s.shape == (n, 3) and s.dtype == torch.int64
    freq = torch.stack([(s[:, 0] == k).to(dtype).mean() for k in range(4)])
    torch.testing.assert_close(freq, probs, atol=1.5 / n, rtol=0)
    # monotone inverse CDF; u close to 1 stays in range
    assert s[:, 0].diff().ge(0).all()
    assert d.sample(noise=torch.full((3,), 1 - 1e-7, dtype=dtype)).eq(3).all()
    assert d.sample().shape == (3,)
    with pytest.raises(NotImplementedError):
        d.rsample()


@pytest.mark.parametrize("dtype", DTYPES)
def test_log_prob_of_draw_is_log_prob_of_the_drawn_index(dtype):
    logits = randn(*B, N, dtype=dtype, scale=2.0)
    logits[0, 0, 1:] = -float("inf")  # one row with a single possible category
    u = torch.rand(B, generator=gen(4), dtype=dtype)
    u[1] = 1 - 1e-7  # the top of the CDF
    idx = Categorical(logits=logits).sample(noise=u)

    check(lambda logits: Categorical(logits=logits).log_prob_of_draw(idx),
          lambda logits: D.Categorical(logits=logits, validate_args=False).log_prob(idx), {"logits": logits})
    d = Categorical(logits=logits)
    assert torch.equal(d.log_prob_of_draw(idx), d.log_prob(idx))  # the same numbers as the masked form
    one_hot = OneHotCategorical(logits=logits)
    assert torch.equal(one_hot.log_prob_of_draw(one_hot.sample(noise=u)), d.log_prob(idx))


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_hot_categorical_vs_torchrl(dtype):
    logits = randn(*B, N, dtype=dtype, scale=2.0)
    value = torch.nn.functional.one_hot(torch.randint(0, N, B, generator=gen(1)), N)

    def run(cls):
        def f(logits):
            d = cls(logits=logits)
            return d.log_prob(value), d.entropy()
        return f

    check(run(OneHotCategorical), run(RLOneHotCategorical), {"logits": logits})
    d, r = OneHotCategorical(logits=logits), RLOneHotCategorical(logits=logits)
    assert torch.equal(d.mode, r.mode) and d.mode.dtype == torch.int64
    assert torch.equal(d.deterministic_sample, r.deterministic_sample)
    assert d.batch_shape == r.batch_shape and d.event_shape == r.event_shape
    assert d.has_rsample == r.has_rsample
    # ties: every maximal logit is marked, as TorchRL
    tie = torch.tensor([[1.0, 3.0, 3.0]], dtype=dtype)
    assert torch.equal(OneHotCategorical(logits=tie).mode, RLOneHotCategorical(logits=tie).mode)
    # sampling: one-hot int64; pass-through rsample has the gradient of probs
    u = torch.rand(B, generator=gen(3), dtype=dtype)
    idx = Categorical(logits=logits).sample(noise=u)
    s = d.sample(noise=u)
    assert s.dtype == torch.int64 and torch.equal(s, torch.nn.functional.one_hot(idx, N))
    check(
        lambda logits: OneHotCategorical(logits=logits).rsample(noise=u),
        lambda logits: (lambda p: torch.nn.functional.one_hot(idx, N) + p - p.detach())(
            RLOneHotCategorical(logits=logits).probs
        ),
        {"logits": logits},
    )


# --------------------------------------------------------------------------------------------
# IndependentNormal
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tanh_loc", [False, True])
def test_independent_normal_vs_torchrl(dtype, tanh_loc):
    loc = randn(*B, N, dtype=dtype, scale=8.0)
    scale = randn(*B, N, dtype=dtype, seed=1).exp()
    value = randn(*B, N, dtype=dtype, seed=2, scale=3.0)
    seed = 11

    def rl(loc, scale):
        d = RLIndependentNormal(loc, scale, upscale=3.0, tanh_loc=tanh_loc)
        if tanh_loc:  # TorchRL 0.14.1 applies tanh_loc only in update()
            d.update(loc, scale)
        torch.manual_seed(seed)
        return d.log_prob(value), d.entropy(), d.mean, d.mode, d.deterministic_sample, d.rsample((2,))

    def ours(loc, scale):
        d = IndependentNormal(loc, scale, upscale=3.0, tanh_loc=tanh_loc)
        torch.manual_seed(seed)
        eps = _standard_normal((2, *B, N), dtype=dtype, device=loc.device)
        return d.log_prob(value), d.entropy(), d.mean, d.mode, d.deterministic_sample, d.rsample((2,), noise=eps)

    check(ours, rl, {"loc": loc, "scale": scale})
    d = IndependentNormal(loc, scale)
    r = D.Independent(D.Normal(loc, scale, validate_args=False), 1)
    assert d.batch_shape == r.batch_shape and d.event_shape == r.event_shape and d.has_rsample
    torch.testing.assert_close(d.log_prob(value), r.log_prob(value))
    assert Normal is IndependentNormal


@pytest.mark.parametrize("dtype", DTYPES)
def test_independent_normal_scalar_and_callable_scale(dtype):
    loc = randn(*B, N, dtype=dtype)
    value = randn(*B, N, dtype=dtype, seed=2)
    for scale in (0.5, torch.ones_like):
        d, r = IndependentNormal(loc, scale), RLIndependentNormal(loc, scale)
        torch.testing.assert_close(d.log_prob(value), r.log_prob(value))
        torch.testing.assert_close(d.entropy(), r.entropy())
        assert d.log_prob(value).dtype == dtype


# --------------------------------------------------------------------------------------------
# TanhNormal
# --------------------------------------------------------------------------------------------
# Saturated values (|tanh| clamped at 1 - resolution) compare at TOL's "tanh" row.
BOUNDS = [(-1.0, 1.0), (-2.0, 2.0), (-1.0, 3.0), "tensor"]


def _bounds(bounds, dtype):
    if bounds == "tensor":
        low = torch.tensor([-1.0, -2.0, 0.0, -1.0, -0.5], dtype=dtype)
        return low, low + torch.tensor([2.0, 4.0, 1.0, 3.0, 0.5], dtype=dtype)
    return bounds


def _tanh_values(low, high, dtype, shape):
    """Values inside, near and exactly at the bounds."""
    low_t, high_t = torch.as_tensor(low, dtype=dtype), torch.as_tensor(high, dtype=dtype)
    u = torch.rand(shape, generator=gen(5), dtype=dtype)
    u[..., 0, 0] = 0.0
    u[..., 0, 1] = 1.0
    u[..., 1, 0] = 1e-9
    u[..., 1, 1] = 1 - 1e-9
    u[..., 2, 0] = 1e-4
    return low_t + (high_t - low_t) * u


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bounds", BOUNDS)
@pytest.mark.parametrize("tanh_loc,upscale", [(False, 5.0), (True, 5.0), (True, 2.0)])
def test_tanh_normal_vs_torchrl(dtype, bounds, tanh_loc, upscale):
    low, high = _bounds(bounds, dtype)
    loc = randn(*B, N, dtype=dtype, scale=3.0)
    loc[0, 0] = 25.0  # saturated draws
    loc[0, 1] = -25.0
    scale = randn(*B, N, dtype=dtype, seed=1).exp() * 0.5
    value = _tanh_values(low, high, dtype, (*B, N))
    seed = 7
    kw = dict(low=low, high=high, upscale=upscale, tanh_loc=tanh_loc)

    def rl(loc, scale):
        d = RLTanhNormal(loc, scale, **kw)
        torch.manual_seed(seed)
        a = d.rsample((2,))
        torch.manual_seed(seed)
        a2, lp2 = d.rsample_and_log_prob((2,))
        return d.log_prob(value), d.deterministic_sample, a, d.log_prob(a), a2, lp2

    def ours(loc, scale):
        d = TanhNormal(loc, scale, **kw)
        torch.manual_seed(seed)
        eps = _standard_normal((2, *B, N), dtype=dtype, device=loc.device)
        a = d.rsample((2,), noise=eps)
        a2, lp2 = d.rsample_and_log_prob((2,), noise=eps)
        return d.log_prob(value), d.deterministic_sample, a, d.log_prob(a), a2, lp2

    check(ours, rl, {"loc": loc, "scale": scale}, kind="tanh")
    d = TanhNormal(loc, scale, **kw)
    r = RLTanhNormal(loc, scale, **kw)
    assert d.batch_shape == r.batch_shape and d.event_shape == r.event_shape
    assert d.has_rsample == r.has_rsample
    lp = d.log_prob(value)
    assert torch.isfinite(lp).all()
    # actions never reach the bounds (TorchRL's safe tanh clamp)
    a = d.rsample((64,), noise=torch.randn(64, *B, N, generator=gen(9), dtype=dtype) * 10)
    assert (a > torch.as_tensor(low, dtype=dtype)).all() and (a < torch.as_tensor(high, dtype=dtype)).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bounds", [(-1.0, 1.0), (-2.0, 2.0)])
def test_tanh_normal_grad_wrt_value_near_bounds(dtype, bounds):
    """TorchRL's safe atanh keeps a gradient where the clamp is active; so do we."""
    low, high = bounds
    loc = randn(3, 3, dtype=dtype)
    scale = randn(3, 3, dtype=dtype, seed=1).exp()
    value = _tanh_values(low, high, dtype, (2, 3, 3))
    check(
        lambda loc, scale, value: TanhNormal(loc, scale, low=low, high=high).log_prob(value),
        lambda loc, scale, value: RLTanhNormal(loc, scale, low=low, high=high).log_prob(value),
        {"loc": loc, "scale": scale, "value": value},
        kind="tanh",
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_tanh_normal_event_dims_and_unsafe(dtype):
    loc = randn(*B, N, dtype=dtype)
    scale = randn(*B, N, dtype=dtype, seed=1).exp()
    value = torch.rand(*B, N, generator=gen(2), dtype=dtype) * 1.8 - 0.9
    for kw in (dict(event_dims=0), dict(event_dims=2), dict(safe_tanh=False)):
        d, r = TanhNormal(loc, scale, **kw), RLTanhNormal(loc, scale, **kw)
        torch.testing.assert_close(d.log_prob(value), r.log_prob(value))
        torch.testing.assert_close(d.deterministic_sample, r.deterministic_sample)
        assert d.batch_shape == r.batch_shape and d.event_shape == r.event_shape


def test_tanh_normal_float64_bounds_exact():
    """TorchRL turns Python-number bounds into float32 tensors (log((high-low)/2) in float32);
    we keep them in the input dtype. With float64 tensor bounds both agree to ~1e-15."""
    dtype = torch.float64
    loc, scale = randn(6, 3, dtype=dtype), randn(6, 3, dtype=dtype, seed=1).exp()
    value = torch.rand(6, 3, generator=gen(2), dtype=dtype) * 0.6 + 0.2
    ours = TanhNormal(loc, scale, low=-0.3, high=0.9).log_prob(value)
    exact = RLTanhNormal(loc, scale, low=torch.tensor(-0.3, dtype=dtype), high=torch.tensor(0.9, dtype=dtype))
    assert_close(ours, exact.log_prob(value), "loop")
    rl32 = RLTanhNormal(loc, scale, low=-0.3, high=0.9).log_prob(value)
    assert (ours - rl32).abs().max() > 1e-9  # TorchRL's float32 bounds


def test_tanh_normal_no_closed_forms():
    d = TanhNormal(torch.zeros(3), torch.ones(3))
    with pytest.raises(NotImplementedError):
        d.entropy()
    with pytest.raises(NotImplementedError):
        d.mean
    with pytest.raises(RuntimeError):
        d.mode
    with pytest.raises(ValueError, match="high"):
        TanhNormal(torch.zeros(3), torch.ones(3), low=1.0, high=-1.0)


# --------------------------------------------------------------------------------------------
# Delta
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_delta_vs_torchrl(dtype):
    param = randn(*B, N, dtype=dtype)
    value = param.clone()
    value[0, 0, 0] += 1e-3
    value[1, 1] += 1e-9
    d, r = Delta(param), RLDelta(param)
    assert torch.equal(d.log_prob(value), r.log_prob(value))
    assert d.log_prob(value).dtype == dtype
    assert d.batch_shape == r.batch_shape and d.event_shape == r.event_shape
    assert d.has_rsample == r.has_rsample
    for attr in ("mode", "mean", "deterministic_sample"):
        assert torch.equal(getattr(d, attr), getattr(r, attr))
    assert torch.equal(d.sample((2,)), r.sample((2,)))
    check(lambda param: Delta(param).rsample((2,)), lambda param: RLDelta(param).rsample((2,)), {"param": param})
    with pytest.raises(NotImplementedError):
        d.entropy()


def test_input_errors_name_the_argument():
    with pytest.raises(TypeError, match="'loc'"):
        IndependentNormal([0.0], torch.ones(1))
    with pytest.raises(ValueError, match="exactly one"):
        Categorical()
    with pytest.raises(ValueError, match="noise"):
        IndependentNormal(torch.zeros(2, 3), torch.ones(2, 3)).rsample((4,), noise=torch.zeros(2, 3))


# --------------------------------------------------------------------------------------------
# The ONNX-friendly decompositions vs torch's fused kernels
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_softplus_is_torchs_thresholded_kernel(dtype):
    """``softplus`` (one form in eager and graphs) computes torch's kernel: ``x`` above 20,
    ``log1p(exp(x))`` below; values and gradients match ``F.softplus`` within a few ulp, exactly
    above the threshold, finite everywhere, with gradient 0.5 at 0."""
    x = torch.tensor([-800.0, -60.0, -20.0, -1.5, 0.0, 1e-8, 3.0, 19.99, 20.0, 20.01, 45.0, 900.0], dtype=dtype)
    xs = [x.clone().requires_grad_(), x.clone().requires_grad_()]
    fused = torch.nn.functional.softplus(xs[0])
    ours = softplus(xs[1])
    ulp = torch.finfo(dtype).eps
    torch.testing.assert_close(ours, fused.detach(), rtol=4 * ulp, atol=4 * ulp)
    above = x > 20
    assert torch.equal(ours[above], x[above])
    fused.sum().backward()
    ours.sum().backward()
    assert torch.isfinite(xs[1].grad).all()
    torch.testing.assert_close(xs[1].grad, xs[0].grad, rtol=4 * ulp, atol=4 * ulp)
    assert xs[1].grad[x == 0].item() == 0.5


@pytest.mark.parametrize("dtype", DTYPES)
def test_atanh_matches_torch_atanh(dtype):
    y = torch.linspace(-1 + 1e-6, 1 - 1e-6, 101, dtype=dtype)
    ulp = torch.finfo(dtype).eps
    torch.testing.assert_close(atanh(y), torch.atanh(y), rtol=8 * ulp, atol=8 * ulp)
