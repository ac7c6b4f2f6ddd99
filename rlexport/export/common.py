"""What every exporter shares: input names, dynamic dims, the positional adapter, dtype casts,
metadata, and atomic writes of an artifact together with its ``X.json`` and ``X.golden/``.

Dynamic dimensions
------------------
``dynamic=True`` makes every batch dim dynamic, and the time dim too where the graph has one.
Which dims those are is decided, in this order, by:

1. an explicit mapping passed as ``dynamic=`` ``{input name: {dim index: label}}``;
2. the module's hook ``module.dynamic_dims(example)`` returning the same mapping;
3. inference from the example (``infer_dynamic_dims``): the inputs that carry the batch are the
   tensors whose first dim has the most common size (> 1); their longest common shape prefix is
   the batch shape, stopping at a dim of size 1 and, when all those inputs have one shape, before
   their last dim (the feature dim of ``[*batch, F]``). If the module has a time axis (a
   ``time_dim`` attribute on it or on its value estimator) and that prefix has two dims or more,
   the last prefix dim is ``"time"`` (``[*batch, T, F]`` with ``time_dim=-2``); the others are
   ``"batch"``, ``"batch_1"``, ... Tensors that do not start with the batch shape (scalars,
   hyper-parameters such as KL-PPO's ``beta``) stay static.

Labels are shared: every input dim labelled ``"batch"`` is the same symbolic size in the graph
(``torch.export.Dim``) and the same ``dim_param`` in ONNX. Use batch sizes > 1 in the example
(torch.export specialises sizes 0 and 1). Whatever the declaration, every export is verified by
running the artifact at other batch sizes and horizons before anything is written.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import json
import logging
import math
import os
import shutil
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

DynamicDims = dict[str, dict[int, str]]

# float dtype -> (rtol, atol) used against the float64 eager reference.
DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {
    "float64": (1e-7, 1e-9),
    "float32": (1e-4, 1e-5),
    "bfloat16": (2e-2, 1e-2),
    "float16": (5e-3, 1e-3),
}

_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


class ExportError(RuntimeError):
    """An export that could not be made or did not verify; nothing was written."""


def tolerances(dtype: str | torch.dtype) -> tuple[float, float]:
    """Default ``(rtol, atol)`` for outputs of ``dtype`` compared with the float64 reference."""
    name = dtype_name(dtype)
    return DEFAULT_TOLERANCES.get(name, (0.0, 0.0))


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
        out["atol"] = max(atol, EAGER_ERROR_FACTOR * float(eager_abs_err))
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


def dtype_name(dtype: str | torch.dtype) -> str:
    if isinstance(dtype, str):
        return dtype
    return str(dtype).removeprefix("torch.")


def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    try:
        return _DTYPES[dtype]
    except KeyError:
        raise ValueError(f"dtype={dtype!r} is not supported; choose one of {list(_DTYPES)}") from None


# ----------------------------------------------------------------------------- inputs


def check_example(example: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    if not isinstance(example, Mapping) or not example:
        raise TypeError("example must be a non-empty mapping of keyword name -> tensor (what module(**example) takes)")
    out = {}
    for name, value in example.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"example key {name!r} is not a valid input name (flatten nested keys with '_')")
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"example[{name!r}] must be a torch.Tensor, got {type(value).__name__}")
        out[name] = value
    return out


def cast_example(example: Mapping[str, torch.Tensor], dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    """Floating tensors cast to ``dtype``; integer and bool tensors unchanged."""
    if dtype is None:
        return dict(example)
    return {k: v.to(dtype) if v.dtype.is_floating_point else v for k, v in example.items()}


def cast_module(module: nn.Module, dtype: torch.dtype | None) -> nn.Module:
    """A copy of ``module`` with floating parameters and buffers in ``dtype`` (the original is untouched)."""
    module = copy.deepcopy(module)
    if dtype is not None:
        module = module.to(dtype)
    return module


def example_dtype(example: Mapping[str, torch.Tensor]) -> torch.dtype:
    for value in example.values():
        if value.dtype.is_floating_point:
            return value.dtype
    return torch.float32


def _time_capable(module: nn.Module) -> bool:
    for owner in (module, getattr(module, "value_estimator", None), getattr(module, "_value_estimator", None)):
        if owner is not None and isinstance(getattr(owner, "time_dim", None), int):
            return True
    return False


def infer_dynamic_dims(module: nn.Module | None, example: Mapping[str, torch.Tensor]) -> DynamicDims:
    """Infer the batch (and time) dims of each input; see the module docstring for the rule."""
    candidates = {k: v for k, v in example.items() if v.dim() >= 1 and v.shape[0] > 1}
    if not candidates:
        return {}
    counts = collections.Counter(v.shape[0] for v in candidates.values())
    lead = max(counts.items(), key=lambda kv: (kv[1], kv[0]))[0]
    carriers = {k: v for k, v in candidates.items() if v.shape[0] == lead}
    shapes = [tuple(v.shape) for v in carriers.values()]
    prefix: list[int] = []
    for dim in range(min(len(s) for s in shapes)):
        sizes = {s[dim] for s in shapes}
        if len(sizes) != 1 or next(iter(sizes)) <= 1:
            break
        prefix.append(shapes[0][dim])
    if len(set(shapes)) == 1 and len(prefix) == len(shapes[0]) and len(prefix) >= 2:
        prefix.pop()  # all inputs [*batch, F]: the last dim is the feature dim
    labels = [f"batch_{i}" if i else "batch" for i in range(len(prefix))]
    if module is not None and _time_capable(module) and len(prefix) >= 2:
        labels = [f"batch_{i}" if i else "batch" for i in range(len(prefix) - 1)] + ["time"]
    return {k: dict(enumerate(labels)) for k, v in carriers.items() if tuple(v.shape[: len(prefix)]) == tuple(prefix)}


def resolve_dynamic_dims(module: nn.Module, example: Mapping[str, torch.Tensor], dynamic: bool | Mapping) -> DynamicDims:
    """The ``{input: {dim: label}}`` declaration for ``dynamic`` (see the module docstring)."""
    if dynamic is False or dynamic is None:
        return {}
    if isinstance(dynamic, Mapping):
        dims = {str(k): {int(d): str(lbl) for d, lbl in v.items()} for k, v in dynamic.items()}
    elif hasattr(module, "dynamic_dims"):
        dims = {str(k): {int(d): str(lbl) for d, lbl in v.items()} for k, v in module.dynamic_dims(example).items()}
    else:
        dims = infer_dynamic_dims(module, example)
    sizes: dict[str, int] = {}
    for name, spec in dims.items():
        if name not in example:
            raise ValueError(f"dynamic dims name input {name!r}, which is not in the example {list(example)}")
        tensor = example[name]
        for dim, label in list(spec.items()):
            if not -tensor.dim() <= dim < tensor.dim():
                raise ValueError(f"dynamic dim {dim} of input {name!r} is out of range for shape {list(tensor.shape)}")
            size = tensor.shape[dim]
            if sizes.setdefault(label, size) != size:
                raise ValueError(
                    f"dynamic dim {label!r} has size {size} in input {name!r} but {sizes[label]} elsewhere; "
                    "dims sharing a label must have one size"
                )
        dims[name] = {d % tensor.dim(): lbl for d, lbl in spec.items()}
    small = {lbl: s for lbl, s in sizes.items() if s < 2}
    if small:
        raise ValueError(
            f"dynamic dims {small} have size < 2 in the example; torch.export specialises sizes 0 and 1: "
            "use an example batch (and horizon) of at least 2"
        )
    return dims


def label_sizes(example: Mapping[str, torch.Tensor], dims: DynamicDims) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, spec in dims.items():
        for dim, label in spec.items():
            out[label] = int(example[name].shape[dim])
    return out


def torch_dynamic_shapes(input_names: Sequence[str], dims: DynamicDims, *, relaxed: bool = False) -> tuple | None:
    """``dynamic_shapes`` for the positional adapter: one ``torch.export.Dim`` per label.

    ``relaxed``: ``Dim.DYNAMIC`` instead of named dims, so that a guard the graph adds (e.g.
    ``T != 2``) does not fail the export; labels are then restored in ONNX by input position and
    verification at other sizes decides."""
    if not dims:
        return None
    if relaxed:
        return tuple({d: torch.export.Dim.DYNAMIC for d in dims.get(name, {})} or None for name in input_names)
    symbols = {lbl: torch.export.Dim(lbl, min=1) for spec in dims.values() for lbl in spec.values()}
    return tuple({d: symbols[lbl] for d, lbl in dims.get(name, {}).items()} or None for name in input_names)


def resize_example(
    example: Mapping[str, torch.Tensor], dims: DynamicDims, sizes: Mapping[str, int], seed: int = 0
) -> dict[str, torch.Tensor]:
    """New inputs with each labelled dim resized by resampling the example along it.

    Every input sharing a label is indexed with the same random indices, so rows stay consistent
    (an observation and its reward stay together) and integer/bool inputs stay valid.
    """
    gen = torch.Generator().manual_seed(seed)
    base = label_sizes(example, dims)
    index = {lbl: torch.randint(0, base[lbl], (n,), generator=gen) for lbl, n in sizes.items() if lbl in base}
    out = {}
    for name, tensor in example.items():
        for dim, label in sorted(dims.get(name, {}).items()):
            if label in index:
                tensor = tensor.index_select(dim, index[label].to(tensor.device))
        out[name] = tensor.contiguous()
    return out


def variant_sizes(base: Mapping[str, int]) -> list[tuple[str, dict[str, int]]]:
    """The golden cases: the example sizes, a larger batch, and batch 1 at another horizon."""
    if not base:
        return [("example", {})]

    def name(sizes):
        return "_".join(("t" if lbl == "time" else "b" if lbl == "batch" else lbl) + str(n) for lbl, n in sizes.items())

    cases = [dict(base)]
    cases.append({lbl: (2 * n + 1 if lbl != "time" else n) for lbl, n in base.items()})
    cases.append({lbl: (1 if lbl != "time" else 2 * n + 3) for lbl, n in base.items()})
    if "time" in base:
        cases.append({lbl: (3 if lbl != "time" else max(1, n // 2)) for lbl, n in base.items()})
    seen, out = set(), []
    for sizes in cases:
        key = tuple(sizes.items())
        if key not in seen:
            seen.add(key)
            out.append((name(sizes), sizes))
    return out


# ----------------------------------------------------------------------------- outputs


def module_out_keys(module: nn.Module) -> list[str] | None:
    keys = getattr(module, "out_keys", None)
    if keys is None:
        return None
    from rlexport.inputs import flatten_key

    return [flatten_key(k) for k in keys]


def as_tuple(outputs: Any) -> tuple[torch.Tensor, ...]:
    if isinstance(outputs, torch.Tensor):
        return (outputs,)
    if isinstance(outputs, (tuple, list)) and all(isinstance(o, torch.Tensor) for o in outputs):
        return tuple(outputs)
    if isinstance(outputs, Mapping):
        return tuple(outputs.values())
    raise TypeError(f"the module must return a tensor or a tuple of tensors, got {type(outputs).__name__}")


def resolve_outputs(module: nn.Module, n_outputs: int, output_names: Sequence[str] | None) -> tuple[list[str], list[int]]:
    """``(names, indices)``: the graph's output names and which module outputs they are."""
    keys = module_out_keys(module)
    if keys is not None and len(keys) != n_outputs:
        keys = None if output_names is None else keys
        if keys is not None:
            raise ValueError(f"{type(module).__name__}.out_keys has {len(module_out_keys(module))} names but forward returned {n_outputs} outputs")
    if keys is None:
        keys = ["output"] if n_outputs == 1 else [f"output_{i}" for i in range(n_outputs)]
        if output_names is not None:
            if len(output_names) != n_outputs:
                raise ValueError(f"output_names has {len(output_names)} names but the module returns {n_outputs} outputs")
            keys = list(output_names)
            return keys, list(range(n_outputs))
    if output_names is None:
        return keys, list(range(n_outputs))
    output_names = list(output_names)
    unknown = [n for n in output_names if n not in keys]
    if unknown:
        raise ValueError(f"output {unknown[0]!r} is not an output of {type(module).__name__}; its outputs: {keys}")
    if len(set(output_names)) != len(output_names):
        raise ValueError(f"output_names {output_names} names an output twice")
    return output_names, [keys.index(n) for n in output_names]


_ADAPTERS: dict[tuple[str, ...], type] = {}


def positional_adapter(module: nn.Module, input_names: Sequence[str], indices: Sequence[int] | None = None) -> nn.Module:
    """An ``nn.Module`` whose ``forward(a, b, ...)`` takes the inputs positionally, in ``input_names``
    order, calls ``module(a=a, b=b, ...)`` and returns a tuple (the outputs at ``indices``).

    The argument names are the input names, so graph placeholders (and ONNX inputs) carry them.
    """
    names = tuple(input_names)
    cls = _ADAPTERS.get(names)
    if cls is None:
        params = ", ".join(names)
        call = ", ".join(f"{n}={n}" for n in names)
        src = f"def forward(self, {params}):\n    return self._select(self.module({call}))\n"
        ns: dict[str, Any] = {}
        exec(compile(src, f"<rlexport adapter {params}>", "exec"), ns)
        cls = type("PositionalAdapter", (_AdapterBase,), {"forward": ns["forward"], "input_names": names})
        _ADAPTERS[names] = cls
    return cls(module, indices)


class _AdapterBase(nn.Module):
    def __init__(self, module: nn.Module, indices: Sequence[int] | None):
        super().__init__()
        self.module = module
        self.indices = None if indices is None else tuple(indices)

    def _select(self, outputs):
        out = as_tuple(outputs)
        if self.indices is not None:
            out = tuple(out[i] for i in self.indices)
        return out


# ----------------------------------------------------------------------------- metadata


def module_config(module: nn.Module) -> Any:
    """``module.export_config()`` when it has one (JSON-able), else its ``repr``."""
    if hasattr(module, "export_config"):
        try:
            config = module.export_config()
            json.dumps(config)
            return config
        except Exception:  # noqa: BLE001 - fall back to repr
            pass
    return repr(module)


def tensor_spec(tensor: torch.Tensor, dims: Mapping[int, str] | None = None) -> dict:
    shape: list[int | str] = list(tensor.shape)
    for d, lbl in (dims or {}).items():
        shape[d] = lbl
    return {"dtype": dtype_name(tensor.dtype), "shape": shape}


@dataclass
class ExportPlan:
    """Everything the format-specific writers need, computed once from ``(module, example)``."""

    module: nn.Module  # cast copy
    original: nn.Module
    example: dict[str, torch.Tensor]  # cast copy
    input_names: list[str]
    output_names: list[str]
    output_indices: list[int]
    dims: DynamicDims
    dtype: torch.dtype
    outputs: tuple[torch.Tensor, ...]
    output_dims: dict[str, dict[int, str]] = field(default_factory=dict)

    @property
    def adapter(self) -> nn.Module:
        return positional_adapter(self.module, self.input_names, self.output_indices)

    @property
    def args(self) -> tuple[torch.Tensor, ...]:
        return tuple(self.example[n] for n in self.input_names)

    def dynamic_shapes(self, relaxed: bool = False):
        return torch_dynamic_shapes(self.input_names, self.dims, relaxed=relaxed)

    def metadata(self, fmt: str, artifact: str, extra: Mapping[str, Any] | None = None) -> dict:
        from rlexport import __version__

        rtol, atol = tolerances(self.dtype)
        meta = {
            "format": fmt,
            "artifact": artifact,
            "kind": "forward",
            "rlexport_version": __version__,
            "torch_version": torch.__version__,
            "class": f"{type(self.original).__module__}.{type(self.original).__qualname__}",
            "config": module_config(self.original),
            "dtype": dtype_name(self.dtype),
            "inputs": {n: tensor_spec(self.example[n], self.dims.get(n)) for n in self.input_names},
            "outputs": {
                n: tensor_spec(t, self.output_dims.get(n)) for n, t in zip(self.output_names, self.outputs)
            },
            "input_names": self.input_names,
            "out_keys": self.output_names,
            "dynamic_axes": {n: {str(d): l for d, l in s.items()} for n, s in self.dims.items()},
            "rtol": rtol,
            "atol": atol,
        }
        meta.update(extra or {})
        return meta


def plan_export(
    module: nn.Module,
    example: Mapping[str, torch.Tensor],
    *,
    dynamic: bool | Mapping = True,
    dtype: str | torch.dtype | None = None,
    output_names: Sequence[str] | None = None,
) -> ExportPlan:
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    example = check_example(example)
    tdtype = parse_dtype(dtype)
    cmod = cast_module(module, tdtype)
    cex = cast_example(example, tdtype)
    dims = resolve_dynamic_dims(cmod, cex, dynamic)
    with torch.no_grad():
        outputs = as_tuple(cmod(**cex))
    names, indices = resolve_outputs(cmod, len(outputs), output_names)
    outputs = tuple(outputs[i] for i in indices)
    return ExportPlan(
        module=cmod,
        original=module,
        example=cex,
        input_names=list(cex),
        output_names=names,
        output_indices=indices,
        dims=dims,
        dtype=tdtype or example_dtype(cex),
        outputs=outputs,
        output_dims=infer_output_dims(cex, dims, outputs, names),
    )


def infer_output_dims(example, dims, outputs, names) -> dict[str, dict[int, str]]:
    """Output dims whose example size equals a labelled input size at the same leading position."""
    ref = None
    for name, spec in dims.items():
        if ref is None or len(spec) > len(ref):
            ref = spec
    out: dict[str, dict[int, str]] = {}
    if not ref:
        return out
    sizes = {d: example[n].shape[d] for n, s in dims.items() for d in s}
    for name, tensor in zip(names, outputs):
        spec = {}
        for d, lbl in sorted(ref.items()):
            if d < tensor.dim() and tensor.shape[d] == sizes.get(d):
                spec[d] = lbl
            else:
                break
        if spec:
            out[name] = spec
    return out


# ----------------------------------------------------------------------------- quiet exports


@contextlib.contextmanager
def quiet():
    """Silence the exporters' warnings and progress logs (deprecations, torchvision notices)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "torch._dynamo", "torch._inductor", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.redirect_stdout(_Null()):
                yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


class _Null:
    def write(self, *_):
        return 0

    def flush(self):
        pass


# ----------------------------------------------------------------------------- atomic writes


def sidecar_paths(path: str | os.PathLike) -> tuple[Path, Path, Path]:
    """``(X.ext, X.json, X.golden)`` for an artifact path."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix else path
    return path, stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".golden")


class Staging:
    """A temporary directory beside the destination; ``commit()`` renames everything into place.

    On any error before ``commit`` the directory is removed and nothing at the destination changes.
    """

    def __init__(self, path: str | os.PathLike):
        self.final, self.final_json, self.final_golden = sidecar_paths(path)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=f".{self.final.name}.", suffix=".tmp", dir=self.final.parent))
        self.artifact = self.dir / self.final.name
        self.json = self.dir / self.final_json.name
        self.golden = self.dir / self.final_golden.name

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def commit(self) -> Path:
        old = []
        # The golden directory cannot be replaced atomically: move the old one aside first.
        if self.golden.exists():
            if self.final_golden.exists():
                aside = self.dir / ".old-golden"
                os.replace(self.final_golden, aside)
                old.append(aside)
            os.replace(self.golden, self.final_golden)
        if self.json.exists():
            os.replace(self.json, self.final_json)
        os.replace(self.artifact, self.final)
        return self.final


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as the strings ``"Infinity"``, ``"-Infinity"``, ``"NaN"``.

    Strict JSON has no such numbers (JavaScript's ``JSON.parse`` rejects Python's bare
    ``Infinity``); ``float(s)`` in Python and ``Number(s)`` in JavaScript read the strings back.
    Example: the default ``hp.max_grad_norm = inf`` of a train-step graph.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def dumps_json(data: Any, **kwargs: Any) -> str:
    """Strict JSON (no NaN/Infinity literals) that any language's parser reads."""
    return json.dumps(json_safe(data), allow_nan=False, default=str, **kwargs)


def write_json(path: Path, data: Any) -> None:
    Path(path).write_text(dumps_json(data, indent=2, sort_keys=False) + "\n")


ONNX_METADATA_PREFIX = "rlexport."


def set_onnx_metadata(model: Any, metadata: Mapping[str, Any]) -> None:
    """Replace ``model.metadata_props`` by ``rlexport.<key>`` entries; every value is JSON (a string
    too), so a reader in any language parses each entry the same way."""
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key = ONNX_METADATA_PREFIX + key
        entry.value = dumps_json(value)


def onnx_metadata(props: Mapping[str, str]) -> dict[str, Any]:
    """The ``rlexport.*`` entries of an ONNX model's ``metadata_props`` (as a name → value mapping)."""
    out: dict[str, Any] = {}
    for key, value in props.items():
        if not key.startswith(ONNX_METADATA_PREFIX):
            continue
        try:
            out[key.removeprefix(ONNX_METADATA_PREFIX)] = json.loads(value)
        except (json.JSONDecodeError, TypeError):
            out[key.removeprefix(ONNX_METADATA_PREFIX)] = value
    return out
