"""THE tolerance rule: how close an artifact's outputs must be to the float64 eager reference.

A value passes when ``|x - ref| <= atol + rtol * |ref|`` elementwise (:func:`compare`; non-finite
values must be equal; integer and bool outputs exactly equal). Defaults by the compared dtype
(:data:`DEFAULT_TOLERANCES`). Below float64 an output's ``atol`` is widened by how far eager
PyTorch in that dtype itself lands from float64 (:func:`output_tolerance`, conditioning-aware),
and recorded per output in the golden sample.

Every tolerance an artifact carries must be finite, ``>= 0`` and at most :data:`MAX_RTOL` /
:data:`MAX_ATOL` (:func:`check_tolerance`): a sample that would accept any value is refused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from rlexport.artifact.dtypes import dtype_name

#: The largest tolerances a golden sample (or a caller) may set: past these a comparison no longer
#: tells a correct artifact from a wrong one. Conditioning-aware widening is clipped to MAX_ATOL.
MAX_RTOL = 0.5
MAX_ATOL = 1.0

# float dtype -> (rtol, atol) used against the float64 eager reference.
DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {
    "float64": (1e-7, 1e-9),
    "float32": (1e-4, 1e-5),
    "bfloat16": (2e-2, 1e-2),
    "float16": (5e-3, 1e-3),
}

def tolerances(dtype: Any) -> tuple[float, float]:
    """Default ``(rtol, atol)`` for outputs of ``dtype`` compared with the float64 reference
    (``(0, 0)``, exact, for integer and bool dtypes)."""
    try:
        return DEFAULT_TOLERANCES.get(dtype_name(dtype), (0.0, 0.0))
    except ValueError:
        return (0.0, 0.0)


# Conditioning-aware tolerances (docs/design.md, "Golden sample format"): for an artifact in a
# dtype below float64, eager PyTorch in that dtype is run on the golden inputs too, and each float
# output's atol becomes max(default atol, EAGER_ERROR_FACTOR x eager's max abs error against the
# float64 reference). An ill-conditioned output (a near-zero mean of O(1) normalised advantages)
# then gets the slack float32 itself needs, and every well-conditioned output keeps the default.
# One eager run is one draw of the rounding error, which can land near zero by luck: eager is
# also run on EAGER_JITTER_DRAWS copies of the inputs with their non-integer float values moved by
# -1, 0 or +1 ulp at random (the size of the rounding the artifact's own kernels add), and the
# largest error over the runs and the golden cases is the output's eager error.
# EAGER_ERROR_FACTOR = 8: an artifact computes the same function with other kernels and another
# summation order, so its error is of eager's size but not equal to it. Measured on ClipPPOLoss
# with normalised advantages (40 ill-conditioned examples, docs/design.md): ORT error / eager
# error reached 8.2x the plain eager run's error, 3.3x the jittered estimate; 8 covers that and
# stays far below what a wrong constant or a swapped output costs.
EAGER_ERROR_FACTOR = 8.0
EAGER_JITTER_DRAWS = 3


def output_tolerance(dtype: str | torch.dtype, eager_abs_err: float | None) -> dict[str, float]:
    """``{"rtol", "atol", "eager_abs_err"}`` for one float output of an artifact in ``dtype``.

    ``eager_abs_err``: the largest ``|eager in dtype - float64 reference|`` of this output over the
    golden cases; ``None`` (or non-finite) when it is not meaningful (float64, an output that is
    not deterministic): the defaults are kept."""
    rtol, atol = tolerances(dtype)
    out = {"rtol": rtol, "atol": atol}
    if eager_abs_err is not None and math.isfinite(eager_abs_err):
        out["atol"] = min(MAX_ATOL, max(atol, EAGER_ERROR_FACTOR * float(eager_abs_err)))
        out["eager_abs_err"] = float(eager_abs_err)
    return out


def ulp_jitter(inputs: Mapping[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """``inputs`` with each non-integer float value moved by -1, 0 or +1 ulp at random; integer,
    bool and integer-valued float entries (masks, indices, done flags) are left as they are."""
    out = {}
    for k, v in inputs.items():
        if not v.dtype.is_floating_point or v.numel() == 0:
            out[k] = v
            continue
        step = torch.randint(-1, 2, v.shape, generator=generator).to(v.device)
        inf = torch.full_like(v, math.inf)
        moved = torch.where(step > 0, torch.nextafter(v, inf), torch.nextafter(v, -inf))
        keep = (step == 0) | (v == v.round()) | ~v.isfinite()
        out[k] = torch.where(keep, v, moved)
    return out


def conditioning_errors(
    run_low: Any,
    run_reference: Any,
    inputs: Mapping[str, torch.Tensor],
    reference: Mapping[str, torch.Tensor],
    *,
    seed: int = 0,
    draws: int | None = None,
) -> dict[str, float | None]:
    """Per float output of one case: the largest ``|eager in the low dtype - float64 reference|``
    over the plain run and ``draws`` ulp-jittered runs of ``run_low`` (``inputs`` in the low
    dtype -> ``{name: tensor}``). ``None`` for an output that ``run_reference`` (float64, a second
    time) does not reproduce exactly — a module drawing random numbers — or that eager gets
    non-finite where the reference is not: such outputs keep the default tolerances."""
    draws = EAGER_JITTER_DRAWS if draws is None else draws
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        again = run_reference()
        runs = [run_low(inputs)] + [run_low(ulp_jitter(inputs, gen)) for _ in range(draws)]
    errors: dict[str, float | None] = {}
    for name, ref in reference.items():
        if not ref.dtype.is_floating_point:
            continue
        other = again.get(name)
        if other is None or other.shape != ref.shape or not bool(((other == ref) | (other.isnan() & ref.isnan())).all()):
            errors[name] = None
            continue
        errs = [eager_abs_err(run[name], ref) if name in run else None for run in runs]
        errors[name] = None if any(e is None for e in errs) else max(errs)
    return errors


def merge_errors(total: dict[str, float | None], case: Mapping[str, float | None]) -> None:
    """Fold one case's ``conditioning_errors`` into ``total`` (max; ``None`` sticks)."""
    for name, err in case.items():
        if name in total and total[name] is None:
            continue
        total[name] = None if err is None else max(err, total.get(name) or 0.0)


def eager_abs_err(actual: torch.Tensor, reference: torch.Tensor) -> float | None:
    """``max |actual - reference|`` in float64 (non-finite values equal in both count as 0);
    ``None`` when the shapes differ or a value is non-finite in only one of them."""
    if actual.shape != reference.shape:
        return None
    if actual.numel() == 0:
        return 0.0
    a = actual.detach().to(torch.float64)
    r = reference.detach().to(torch.float64)
    same = (a == r) | (a.isnan() & r.isnan())
    diff = torch.where(same, torch.zeros_like(a), (a - r).abs())
    err = float(diff.max())
    return err if math.isfinite(err) else None


def compare(actual: np.ndarray, reference: np.ndarray, rtol: float, atol: float) -> tuple[float, float, bool, str | None]:
    """``(max abs err, max rel err, passed, error)`` for one output."""
    actual = np.asarray(actual)
    reference = np.asarray(reference)
    if actual.shape != reference.shape:
        return float("inf"), float("inf"), False, f"shape {list(actual.shape)} != reference {list(reference.shape)}"
    if actual.size == 0:
        return 0.0, 0.0, True, None
    if not (np.issubdtype(reference.dtype, np.floating) or np.issubdtype(actual.dtype, np.floating)):
        diff = np.abs(actual.astype(np.int64) - reference.astype(np.int64))
        err = float(diff.max())
        return err, err, err == 0, None
    a = actual.astype(np.float64)
    r = reference.astype(np.float64)
    same_nonfinite = (np.isnan(a) & np.isnan(r)) | (np.isinf(a) & np.isinf(r) & (np.sign(a) == np.sign(r)))
    diff = np.where(same_nonfinite, 0.0, np.abs(a - r))
    diff = np.where(np.isnan(diff), np.inf, diff)
    rel = diff / np.maximum(np.abs(r), np.finfo(np.float64).tiny)
    rel = np.where(diff == 0, 0.0, rel)
    ok = bool(np.all(diff <= atol + rtol * np.abs(np.where(np.isfinite(r), r, 0.0))))
    return float(diff.max()), float(rel.max()), ok, None


def check_tolerance(rtol: Any, atol: Any, what: str, error: type[Exception] = ValueError) -> tuple[float, float]:
    """``(rtol, atol)`` as floats; ``error`` naming ``what`` unless both are finite, ``>= 0`` and
    within :data:`MAX_RTOL` / :data:`MAX_ATOL`."""
    try:
        rtol, atol = float(rtol), float(atol)
    except (TypeError, ValueError):
        raise error(f"{what}: tolerance rtol={rtol!r}, atol={atol!r} is not a pair of numbers") from None
    for name, value, cap in (("rtol", rtol, MAX_RTOL), ("atol", atol, MAX_ATOL)):
        if not math.isfinite(value) or value < 0 or value > cap:
            raise error(f"{what}: {name}={value!r} must be finite, >= 0 and <= {cap}")
    return rtol, atol


def tolerance_rule(dtype: str | torch.dtype, **extra: Any) -> dict:
    """How the per-output tolerances of a golden sample were set (recorded in its index.json)."""
    return {
        "rule": "atol = min(MAX_ATOL, max(default atol, factor * eager_abs_err)); eager_abs_err = max |eager in dtype - "
        "float64 reference| over the cases, on the inputs and on jitter_draws copies moved by +-1 ulp",
        "dtype": dtype_name(dtype),
        "factor": EAGER_ERROR_FACTOR,
        "jitter_draws": EAGER_JITTER_DRAWS,
        "max_atol": MAX_ATOL,
        **extra,
    }


#: Jittered eager runs for a train step's tolerances (forward and gradient goldens: 3,
#: ``EAGER_JITTER_DRAWS``). Adam's first step ``lr * g / (|g| + eps)`` is ``±lr`` for every
#: element with ``|g| >> eps``, so a parameter whose gradient is within float32 rounding of zero
#: moves by ``+lr`` or ``-lr``: its error is ``0`` or ``2 lr`` rather than of a rounding size, and
#: eager shows it only in a run that flips that element too; more draws catch more such flips
#: (``docs/design.md``, "Golden sample format").
TRAIN_JITTER_DRAWS = 10


def default_parity_bounds(dtype: str | torch.dtype) -> tuple[float, float]:
    """``(max abs param diff, rtol of outputs)`` of a K-step train-step validation, ONNX Runtime vs
    eager torch in the same dtype."""
    return (1e-10, 1e-8) if dtype_name(dtype) == "float64" else (1e-5, 1e-4)


def is_low_precision(dtype: torch.dtype) -> bool:
    """Below float64: tolerances are widened by eager's own error (conditioning-aware)."""
    return dtype.is_floating_point and torch.finfo(dtype).bits < 64
