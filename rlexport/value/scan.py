"""The one primitive behind every value estimator: a reverse linear recurrence.

Every estimator in :mod:`rlexport.value.functional` is

    y_t = x_t + a_t * y_{t+1},        y_T = 0,

along the time axis, with ``x`` and ``a`` built elementwise from rewards, values, discounts and
the done/terminated masks. :func:`reverse_linear_recurrence` evaluates it with a log-depth
doubling scan (Hillis–Steele for an affine map): after step ``k`` every ``y_t`` holds the sum of
the next ``2^(k+1)`` terms and ``A_t`` the product of the next ``2^(k+1)`` coefficients:

    step k (s = 2^k):   y <- y + A * shift(y, s)       A <- A * shift(A, s)

where ``shift(z, s)_t = z_{t+s}`` (zero beyond the end). It uses only slice/pad/mul/add (and a
final ``where`` in a traced graph), so it exports with a dynamic time axis, costs
``O(N log T)`` work, and needs no Python loop over ``T``.

Exactness
---------
The scan sums the same products as the step loop, in another order: it agrees with a Python
loop to rounding (tested in ``tests/value`` against a float64 loop).

Static and symbolic horizons
----------------------------
* ``T`` a Python int (eager, or a graph exported with a static time axis): exactly
  ``ceil(log2 T)`` steps, no bound on ``T``.
* ``T`` a ``torch.SymInt`` (a dynamic time axis under ``torch.export``,
  ``torch.onnx.export(dynamo=True)``, ``torch.compile``): the graph holds ``max_steps`` steps
  (default :data:`DEFAULT_MAX_STEPS` = 20, horizons up to ``2^20``), all unconditional, with no
  branch. Shifts are capped at ``T`` (``sym_min``), so a step with ``2^k >= T`` shifts in zeros
  and adds exact zeros: the numbers are the eager ones bit for bit. For ``T > 2^max_steps`` the
  graph returns NaN everywhere (selected by ``where``, never a truncated sum); pass a larger
  ``max_steps`` to export for longer horizons. This form was chosen for export time: 2-step
  ``torch.cond`` blocks (ONNX ``If``) after 7 unconditional steps skipped the unneeded steps at
  run time but made ``torch.export`` and the ONNX conversion take tens of seconds at 20 steps
  (``benchmarks/export_times.py``); shifting by a ``Gather`` at ``min(t + 2^k, T)`` traced faster
  still but ran 20x slower in ONNX Runtime. A runtime now pays for the steps a short horizon does
  not need (``benchmarks/estimators.py``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from rlexport.inputs import check_same_shape, check_tensor, normalize_dim

__all__ = ["reverse_linear_recurrence", "DEFAULT_MAX_STEPS", "max_horizon"]

#: Doubling steps a traced graph holds: horizons up to ``2**DEFAULT_MAX_STEPS`` are exact.
DEFAULT_MAX_STEPS = 20

_OWNER = "reverse_linear_recurrence"


def max_horizon(max_steps: int = DEFAULT_MAX_STEPS) -> int:
    """The longest horizon a traced graph built with ``max_steps`` computes exactly."""
    return 2**max_steps


def _shift(z: torch.Tensor, s: int) -> torch.Tensor:
    """``z`` (time last) moved ``s`` steps earlier, zero-padded at the end; requires ``s < T``."""
    return F.pad(z[..., s:], (0, s))


def _steps_eager(y: torch.Tensor, A: torch.Tensor, T: int) -> torch.Tensor:
    n_steps = math.ceil(math.log2(T)) if T > 1 else 0
    for k in range(n_steps):
        s = 1 << k
        y = y + A * _shift(y, s)
        if k + 1 < n_steps:
            A = A * _shift(A, s)
    return y


#: Shifts up to this pad by the full shift (at most this many extra elements per row, whatever
#: ``T``): no symbolic ``min`` in their shapes, which keeps tracing cheap; longer shifts are capped.
_UNCAPPED_SHIFT = 1024


def _shift_symbolic(z: torch.Tensor, s: int, T) -> torch.Tensor:
    """:func:`_shift` for a symbolic ``T``: the length is ``T`` for every ``T`` and a shift of
    ``T`` or more gives zeros. A long shift is capped at ``T`` (``sym_min``) so that the padding
    never exceeds the tensor (``s`` may be far larger than ``T``)."""
    if s <= _UNCAPPED_SHIFT:
        return F.pad(z, (0, s))[..., s:]
    m = torch.sym_min(s, T)
    # pad-then-slice: slicing a symbolic start off the unpadded axis makes torch.export emit a
    # guard `min(s, T) <= T` that it cannot prove; on the padded axis it can.
    return F.pad(z, (0, m))[..., m:]


def _steps_traced(y: torch.Tensor, A: torch.Tensor, T, max_steps: int) -> torch.Tensor:
    """``max_steps`` doubling steps for a symbolic ``T``, every one unconditional (no branch: a
    step with ``2^k >= T`` shifts in zeros and adds exact zeros, so the numbers are the eager
    ones bit for bit), then the bound: NaN everywhere when ``T > 2^max_steps``."""
    for k in range(max_steps):
        s = 1 << k
        y = y + A * _shift_symbolic(y, s, T)
        if k + 1 < max_steps:
            A = A * _shift_symbolic(A, s, T)
    # Beyond the graph's bound: NaN everywhere, never silently truncated sums (selected, not multiplied).
    too_long = (torch.arange(T, device=y.device) >= (1 << max_steps)).any()
    return torch.where(too_long, torch.full_like(y, float("nan")), y)


def reverse_linear_recurrence(
    x: torch.Tensor,
    a: torch.Tensor,
    *,
    time_dim: int = -2,
    max_steps: int = DEFAULT_MAX_STEPS,
) -> torch.Tensor:
    """Solve ``y_t = x_t + a_t * y_{t+1}`` (``y_T = 0``) along ``time_dim`` by a doubling scan.

    Args:
        x (Tensor): the per-step terms, any shape with a time axis ``time_dim`` (``T >= 1``).
        a (Tensor): the per-step coefficients, same shape and dtype as ``x``.

    Keyword Args:
        time_dim (int): the time axis. Defaults to ``-2`` (``[*batch, T, F]``).
        max_steps (int): doubling steps kept in a traced graph (``torch.export``, ONNX): horizons
            up to ``2**max_steps`` are exact, longer ones give NaN. With a static ``T`` (eager)
            it is ignored: exactly ``ceil(log2 T)`` steps. Defaults to :data:`DEFAULT_MAX_STEPS` (20).

    Returns:
        Tensor ``y`` of ``x``'s shape and dtype.

    Examples:
        >>> x = torch.tensor([1.0, 1.0, 1.0, 1.0]).unsqueeze(-1)
        >>> a = torch.full_like(x, 0.5)
        >>> reverse_linear_recurrence(x, a).squeeze(-1)
        tensor([1.8750, 1.7500, 1.5000, 1.0000])
    """
    check_tensor(_OWNER, "x", x, floating=True)
    check_tensor(_OWNER, "a", a, floating=True)
    check_same_shape(_OWNER, {"x": x, "a": a})
    if x.dtype != a.dtype:
        raise TypeError(f"{_OWNER}: 'a' has dtype {a.dtype} but 'x' has dtype {x.dtype}; they must match")
    if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1:
        raise ValueError(f"{_OWNER}: max_steps must be a positive int, got {max_steps!r}")
    dim = normalize_dim(_OWNER, "time_dim", time_dim, x.ndim)
    T = x.shape[dim]
    if isinstance(T, int) and T == 0:
        raise ValueError(f"{_OWNER}: the time axis (dim {time_dim}) of 'x' is empty (shape {list(x.shape)})")
    # Work with time last: for the usual [*batch, T, 1] layout this is a free view.
    y = x.movedim(dim, -1)
    A = a.movedim(dim, -1)
    if isinstance(T, torch.SymInt):
        y = _steps_traced(y, A, T, max_steps)
    else:
        y = _steps_eager(y, A, T)
    return y.movedim(-1, dim)
