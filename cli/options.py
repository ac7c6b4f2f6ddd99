"""Checks of command-line numbers shared by the commands: one line naming the option, exit 2."""

from __future__ import annotations

import math

from rlexport.cli.errors import UsageError

DTYPES = ("float32", "float64")


def check_tolerance(flag: str, value: float | None) -> float | None:
    """``--rtol``/``--atol``: finite, >= 0 and within the artifact layer's cap (``MAX_RTOL`` /
    ``MAX_ATOL`` in ``rlexport.artifact.tolerance``, the one cap every sample is held to);
    ``None`` keeps the default."""
    if value is None:
        return None
    # Lazy: the artifact layer imports torch, and `rlexport --help` must not.
    from rlexport.artifact.tolerance import MAX_ATOL, MAX_RTOL

    cap = MAX_RTOL if flag == "--rtol" else MAX_ATOL
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"{flag} {value}: a tolerance must be a finite number >= 0")
    if value > cap:
        raise UsageError(f"{flag} {value}: at most {cap:g} (a larger tolerance passes almost anything)")
    return value


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise UsageError(f"--dtype {dtype!r}: choose float32 or float64")
    return dtype


def check_unit_interval(flag: str, value: float | None) -> float | None:
    """A discount or a lambda: finite and in [0, 1]."""
    if value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise UsageError(f"{flag} {value}: must be in [0, 1]")
    return value


def check_non_negative(flag: str, value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and value >= 0.0):
        raise UsageError(f"{flag} {value}: must be a finite number >= 0")
    return value
