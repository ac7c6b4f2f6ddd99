"""One helper that checks values AND gradients of ours against a reference (tinygrad test_ops style)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-10)}


def _flat(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, Mapping):
        return [t for k in sorted(out) for t in _flat(out[k])]
    return [t for o in out for t in _flat(o)]


def check(
    ours: Callable[..., object],
    ref: Callable[..., object],
    inputs: Mapping[str, torch.Tensor],
    *,
    grad: bool = True,
    grad_wrt: tuple[str, ...] | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    grad_rtol: float | None = None,
    grad_atol: float | None = None,
    seed: int = 0,
) -> None:
    """Run ``ours(**inputs)`` and ``ref(**inputs)`` on separate leaf copies; compare every output
    (values, dtypes, shapes) and, when ``grad``, the gradients of ``sum(out * w)`` (fixed random
    ``w``) with respect to each floating input (or those named in ``grad_wrt``)."""
    dtype = next(v.dtype for v in inputs.values() if v.is_floating_point())
    tol = dict(TOL[dtype])
    if rtol is not None:
        tol["rtol"] = rtol
    if atol is not None:
        tol["atol"] = atol
    gtol = dict(rtol=grad_rtol or tol["rtol"], atol=grad_atol or tol["atol"])
    names = [k for k, v in inputs.items() if v.is_floating_point() and (grad_wrt is None or k in grad_wrt)]

    def leaves():
        return {
            k: v.detach().clone().requires_grad_(grad and k in names) for k, v in inputs.items()
        }

    a, b = leaves(), leaves()
    out_a, out_b = _flat(ours(**a)), _flat(ref(**b))
    assert len(out_a) == len(out_b), (len(out_a), len(out_b))
    for i, (x, y) in enumerate(zip(out_a, out_b)):
        assert x.shape == y.shape, f"output {i}: shape {list(x.shape)} vs reference {list(y.shape)}"
        assert x.dtype == y.dtype, f"output {i}: dtype {x.dtype} vs reference {y.dtype}"
        torch.testing.assert_close(x, y, **tol, msg=lambda m: f"output {i}: {m}")
    if not grad:
        return
    gen = torch.Generator().manual_seed(seed)
    diff = [i for i, x in enumerate(out_b) if x.is_floating_point() and x.requires_grad]
    assert diff, "no differentiable output"
    ws = [torch.randn(out_b[i].shape, generator=gen, dtype=out_b[i].dtype) for i in diff]
    la = sum((out_a[i] * w).sum() for i, w in zip(diff, ws))
    lb = sum((out_b[i] * w).sum() for i, w in zip(diff, ws))
    ga = torch.autograd.grad(la, [a[k] for k in names], allow_unused=True)
    gb = torch.autograd.grad(lb, [b[k] for k in names], allow_unused=True)
    for k, x, y in zip(names, ga, gb):
        x = torch.zeros_like(a[k]) if x is None else x
        y = torch.zeros_like(b[k]) if y is None else y
        torch.testing.assert_close(x, y, **gtol, msg=lambda m: f"grad wrt {k!r}: {m}")
