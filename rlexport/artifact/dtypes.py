"""THE dtype table: one name per dtype, and its torch, numpy, ONNX and ONNX Runtime spellings.

Every artifact file (``X.json``, the golden sample's ``index.json``, ONNX metadata) names dtypes
by the ``name`` column; every conversion between the libraries goes through this table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class DType:
    name: str
    torch: torch.dtype
    numpy: np.dtype | None  # None: no numpy dtype (bfloat16), so no golden-sample encoding
    onnx: int  # onnx.TensorProto elem type
    ort: str  # onnxruntime NodeArg.type

    @property
    def is_float(self) -> bool:
        return self.torch.is_floating_point


DTYPES: dict[str, DType] = {
    d.name: d
    for d in (
        DType("float32", torch.float32, np.dtype("<f4"), 1, "tensor(float)"),
        DType("float64", torch.float64, np.dtype("<f8"), 11, "tensor(double)"),
        DType("float16", torch.float16, np.dtype("<f2"), 10, "tensor(float16)"),
        DType("bfloat16", torch.bfloat16, None, 16, "tensor(bfloat16)"),
        DType("int64", torch.int64, np.dtype("<i8"), 7, "tensor(int64)"),
        DType("int32", torch.int32, np.dtype("<i4"), 6, "tensor(int32)"),
        DType("bool", torch.bool, np.dtype("bool"), 9, "tensor(bool)"),
    )
}

#: The dtypes an export may cast a module and its floating inputs to.
EXPORT_FLOAT_DTYPES = ("float32", "float64", "float16", "bfloat16")


def lookup(dtype: Any) -> DType:
    """The table row of ``dtype`` (a name, a ``torch.dtype``, a numpy dtype or ONNX Runtime type string)."""
    if isinstance(dtype, str):
        if dtype in DTYPES:
            return DTYPES[dtype]
        for row in DTYPES.values():
            if row.ort == dtype:
                return row
        name = dtype.removeprefix("torch.")
        if name in DTYPES:
            return DTYPES[name]
        raise ValueError(f"dtype {dtype!r} is not one of {list(DTYPES)}")
    if isinstance(dtype, torch.dtype):
        for row in DTYPES.values():
            if row.torch == dtype:
                return row
        raise ValueError(f"dtype {dtype} is not one of {list(DTYPES)}")
    npd = np.dtype(dtype)
    for row in DTYPES.values():
        if row.numpy is not None and (npd == row.numpy or npd == row.numpy.newbyteorder("=")):
            return row
    raise ValueError(f"dtype {npd} is not one of {list(DTYPES)}")


def dtype_name(dtype: Any) -> str:
    """The table name of ``dtype`` (``torch.float32``, ``np.float32``, ``"tensor(float)"`` -> ``"float32"``)."""
    return lookup(dtype).name


def parse_dtype(dtype: str | torch.dtype | None, allowed: Iterable[str] = EXPORT_FLOAT_DTYPES, *,
                option: str = "dtype") -> torch.dtype | None:
    """``dtype`` as a ``torch.dtype`` (``None`` stays ``None``); ``ValueError`` naming ``option``
    and the accepted names when it is not one of ``allowed``."""
    if dtype is None:
        return None
    allowed = tuple(allowed)
    try:
        row = lookup(dtype)
    except ValueError:
        row = None
    if row is None or row.name not in allowed:
        raise ValueError(f"{option}={dtype!r} is not supported; choose one of {list(allowed)}")
    return row.torch


def numpy_dtype(dtype: Any) -> np.dtype:
    """The numpy dtype of ``dtype``; ``ValueError`` for one without (bfloat16)."""
    row = lookup(dtype)
    if row.numpy is None:
        raise ValueError(f"dtype {row.name} has no numpy dtype")
    return row.numpy


def numpy_of_ort_type(ort_type: str) -> np.dtype | None:
    """The numpy dtype ONNX Runtime expects for a ``NodeArg.type`` (``None``: not in the table)."""
    for row in DTYPES.values():
        if row.ort == ort_type:
            return row.numpy
    return None
