"""Functional optimizers and clipping (rlexport.optim) vs torch.optim, eagerly."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlexport import optim as fopt


def _params(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"a.weight": torch.randn(4, 3, generator=g, dtype=dtype), "a.bias": torch.randn(4, generator=g, dtype=dtype),
            "b": torch.randn(2, 2, 2, generator=g, dtype=dtype)}


def _grads(params, step, dtype):
    g = torch.Generator().manual_seed(100 + step)
    # gradients with very different scales, some near zero
    return {n: torch.randn(p.shape, generator=g, dtype=dtype) * (10.0 ** (i - 2)) for i, (n, p) in enumerate(params.items())}


def _run(optimizer, hp, dtype, steps=20, lr_schedule=None):
    params = _params(dtype)
    torch_params = {n: p.clone().requires_grad_(True) for n, p in params.items()}
    opt = fopt.make_torch_optimizer(optimizer, list(torch_params.values()), hp)
    state = fopt.init_state(optimizer, params)
    hpt = fopt.default_hyperparams(optimizer, **hp)
    worst = 0.0
    for s in range(steps):
        if lr_schedule is not None:
            hpt["lr"] = fopt.hyperparam_tensor("lr", lr_schedule(s))
            fopt.set_torch_hyperparams(opt, optimizer, {"lr": lr_schedule(s)})
        grads = _grads(params, s, dtype)
        clipped, norm = fopt.clip_grads(list(grads.values()), hpt["max_grad_norm"])
        for (n, p), g in zip(torch_params.items(), grads.values()):
            p.grad = g.clone()
        tnorm = torch.nn.utils.clip_grad_norm_(list(torch_params.values()), float(hpt["max_grad_norm"]))
        assert torch.equal(norm, tnorm)
        for (n, p), g in zip(torch_params.items(), clipped):
            assert torch.equal(p.grad, g), n
        params, state = fopt.STEP_FUNCTIONS[optimizer](params, dict(zip(params, clipped)), state, hpt)
        opt.step()
        for n, p in torch_params.items():
            worst = max(worst, (params[n] - p.detach()).abs().max().item())
    return worst, state, opt, torch_params


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "optimizer,hp",
    [
        ("adam", {"lr": 1e-2, "max_grad_norm": 0.5}),
        ("adam", {"lr": 3e-3, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.1, "max_grad_norm": math.inf}),
        ("adamw", {"lr": 1e-2, "weight_decay": 0.05, "max_grad_norm": 1.0}),
        ("sgd", {"lr": 0.1}),
        ("sgd", {"lr": 0.1, "momentum": 0.9, "max_grad_norm": 0.3}),
        ("sgd", {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}),
        ("sgd", {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.01}),
    ],
)
def test_functional_optimizer_matches_torch_optim(optimizer, hp, dtype):
    worst, state, opt, torch_params = _run(optimizer, hp, dtype, lr_schedule=lambda s: hp["lr"] * (1 - s / 40))
    # Same operations in the same order: identical up to FMA contraction in torch's kernels.
    assert worst <= (1e-6 if dtype == torch.float32 else 1e-14), worst
    back = fopt.state_from_torch(optimizer, opt, torch_params)
    if optimizer != "sgd":
        assert back["step"].item() == state["step"].item() == 20
    for k, v in back.items():
        if k != "step":
            torch.testing.assert_close(v, state[k], rtol=1e-5, atol=1e-6 if dtype == torch.float32 else 1e-14)


@settings(max_examples=25, deadline=None)
@given(
    lr=st.floats(1e-5, 1.0),
    b1=st.floats(0.0, 0.99),
    b2=st.floats(0.5, 0.9999),
    wd=st.sampled_from([0.0, 1e-3, 0.1]),
    max_norm=st.sampled_from([0.1, 1.0, math.inf]),
    optimizer=st.sampled_from(["adam", "adamw"]),
)
def test_adam_hyperparameters_property(lr, b1, b2, wd, max_norm, optimizer):
    hp = {"lr": lr, "betas": (b1, b2), "weight_decay": wd, "max_grad_norm": max_norm}
    worst, *_ = _run(optimizer, hp, torch.float64, steps=5)
    assert worst <= 1e-12 * max(1.0, lr * 10)


def test_clip_coefficient_and_inf():
    g = [torch.tensor([3.0, 4.0]), torch.tensor([0.0])]
    clipped, norm = fopt.clip_grads(g, torch.tensor(1.0, dtype=torch.float64))
    assert norm.item() == 5.0
    torch.testing.assert_close(clipped[0], torch.tensor([3.0, 4.0]) * (1.0 / (5.0 + 1e-6)))
    clipped, _ = fopt.clip_grads(g, torch.tensor(math.inf, dtype=torch.float64))
    assert torch.equal(clipped[0], g[0])


def test_errors_name_the_problem():
    with pytest.raises(TypeError, match="unknown hyper-parameter 'betaz'"):
        fopt.default_hyperparams("adam", betaz=1)
    with pytest.raises(ValueError, match="choose one of"):
        fopt.default_hyperparams("rmsprop")


def test_metadata_is_strict_json():
    import json

    from rlexport.artifact.jsonio import json_safe

    meta = json_safe({"hp.max_grad_norm": math.inf, "x": [-math.inf, 1.0], "y": {"z": math.nan}})
    text = json.dumps(meta, allow_nan=False)
    assert json.loads(text) == {"hp.max_grad_norm": "Infinity", "x": ["-Infinity", 1.0], "y": {"z": "NaN"}}
    assert float(meta["hp.max_grad_norm"]) == math.inf


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_adam_groups_mixed_dtypes_and_shapes_like_torch_optim(optimizer):
    """Adam updates each dtype's parameters as one flat vector; every shape (0-d, 1-d, n-d) and
    dtype comes back as torch.optim leaves it, in the caller's order."""
    g = torch.Generator().manual_seed(3)
    params = {"w": torch.randn(3, 2, generator=g), "s": torch.randn((), generator=g, dtype=torch.float64),
              "b": torch.randn(3, generator=g), "v": torch.randn(4, generator=g, dtype=torch.float64)}
    hp = {"lr": 1e-2, "weight_decay": 0.1}
    torch_params = {n: p.clone().requires_grad_(True) for n, p in params.items()}
    opt = fopt.make_torch_optimizer(optimizer, list(torch_params.values()), hp)
    state, hpt = fopt.init_state(optimizer, params), fopt.default_hyperparams(optimizer, **hp)
    for s in range(5):
        grads = {n: torch.randn(p.shape, generator=g, dtype=p.dtype) for n, p in params.items()}
        for n, p in torch_params.items():
            p.grad = grads[n].clone()
        params, state = fopt.STEP_FUNCTIONS[optimizer](params, grads, state, hpt)
        opt.step()
    assert list(params) == ["w", "s", "b", "v"]
    for n, p in torch_params.items():
        assert params[n].shape == p.shape and params[n].dtype == p.dtype, n
        torch.testing.assert_close(params[n], p.detach(), rtol=0, atol=1e-6 if p.dtype == torch.float32 else 1e-14)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, None])
@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_clipped_step_matches_clip_grad_norm_and_torch_optim(optimizer, dtype):
    """``clipped_step`` (Adam: the norm of the one flat gradient vector per dtype) against
    ``clip_grad_norm_`` + ``torch.optim`` over 10 steps that all clip; ``None``: mixed dtypes."""
    params = _params(dtype or torch.float32)
    if dtype is None:
        params["b"] = params["b"].to(torch.float64)
    torch_params = {n: p.clone().requires_grad_(True) for n, p in params.items()}
    hp = {"lr": 1e-2, "max_grad_norm": 0.5, **({"momentum": 0.9} if optimizer == "sgd" else {})}
    opt = fopt.make_torch_optimizer(optimizer, list(torch_params.values()), hp)
    state, hpt = fopt.init_state(optimizer, params), fopt.default_hyperparams(optimizer, **hp)
    ulps = 8 * torch.finfo(dtype or torch.float32).eps
    atol = 1e-12 if dtype == torch.float64 else 1e-5  # mixed: the float32 gradients' norm sets the coefficient
    for s in range(10):
        grads = {n: g.to(params[n].dtype) * 10 for n, g in _grads(params, s, torch.float64).items()}
        for n, p in torch_params.items():
            p.grad = grads[n].clone()
        tnorm = torch.nn.utils.clip_grad_norm_(list(torch_params.values()), 0.5)
        assert tnorm > 0.5
        params, state, norm = fopt.clipped_step(optimizer, params, grads, state, hpt)
        opt.step()
        torch.testing.assert_close(norm, tnorm, rtol=ulps, atol=0)
        for n, p in torch_params.items():
            assert params[n].dtype == p.dtype and params[n].shape == p.shape
            torch.testing.assert_close(params[n], p.detach(), rtol=0, atol=atol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lerp_matches_torch_lerp_on_both_sides_of_one_half(dtype):
    g = torch.Generator().manual_seed(1)
    start, end = torch.randn(4096, generator=g, dtype=dtype) * 10, torch.randn(4096, generator=g, dtype=dtype)
    for w in (0.0, 0.1, 0.4999, 0.5, 0.9, 1.0, -0.3, 1.3):
        weight = torch.tensor(w, dtype=dtype)
        expected = torch.lerp(start, end, weight)
        ulp = torch.finfo(dtype).eps * expected.abs().clamp_min(1)
        assert ((fopt._lerp(start, end, weight) - expected).abs() <= 2 * ulp).all(), w
