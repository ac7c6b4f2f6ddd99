"""The export plan: what every export (forward, gradient, train step) decides before capture.

One plan: the example cast to the export dtype, ONE dynamic-dims rule, ONE golden-case rule
(:func:`golden_sizes`: the example, a larger batch, batch 1 at another horizon, and with a time
axis a small batch at a shorter horizon), and the output names.

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
import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from rlexport.artifact.dtypes import parse_dtype
from rlexport.artifact.metadata import artifact_metadata, tensor_spec
from rlexport.artifact.tolerance import (
    conditioning_errors,
    is_low_precision,
    merge_errors,
    output_tolerance,
    tolerance_rule,
    tolerances,
)
from rlexport.inputs import flatten_key

DynamicDims = dict[str, dict[int, str]]


class ExportError(RuntimeError):
    """An export that could not be made or did not verify; nothing was written."""


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


def golden_inputs(example: Mapping[str, torch.Tensor], dims: DynamicDims) -> list[tuple[str, dict[str, torch.Tensor]]]:
    """THE golden-case rule, for forward, gradient and train-step artifacts alike: ``(case name,
    inputs)`` for the example and each of :func:`variant_sizes` (a larger batch, batch 1 at
    another horizon, and with a time axis a small batch at a shorter horizon), resampled along the
    dynamic dims (case ``i`` with seed ``i``). A static export has one case, the example."""
    cases = []
    for i, (name, sizes) in enumerate(variant_sizes(label_sizes(example, dims))):
        cases.append((name, dict(example) if i == 0 else resize_example(example, dims, sizes, seed=i)))
    return cases


def leading_dims(batch: Mapping[str, torch.Tensor], n: int, owner: str) -> DynamicDims:
    """``batch_dims=n``: the first ``n`` axes (``"batch"``, then ``"time"``) of every tensor with
    at least ``n`` dims."""
    if not 0 <= n <= 2:
        raise ValueError(f"{owner}: batch_dims={n}; 0, 1 or 2 leading dims (batch, time) can be dynamic")
    return {name: {i: ("batch", "time")[i] for i in range(n)} for name, t in batch.items() if n and t.ndim >= n}


def plan_dims(module: nn.Module, batch: Mapping[str, torch.Tensor], dynamic: bool | Mapping = True,
              batch_dims: int | None = None, owner: str = "export") -> DynamicDims:
    """The dynamic dims of ``batch`` by the one rule (:func:`resolve_dynamic_dims`), or the first
    ``batch_dims`` axes; a dynamic export whose example shows no batch axis is an error."""
    if dynamic is False or dynamic is None:
        return {}
    try:
        if batch_dims is not None and not isinstance(dynamic, Mapping):
            return resolve_dynamic_dims(module, batch, leading_dims(batch, int(batch_dims), owner))
        dims = resolve_dynamic_dims(module, batch, dynamic)
    except ValueError as err:
        raise ValueError(f"{owner}: {err}") from None
    if dynamic is True and not dims and any(t.ndim >= 1 for t in batch.values()):
        raise ValueError(
            f"{owner}: found no batch axis in the example (shapes "
            f"{ {k: list(v.shape) for k, v in batch.items()} }); give an example batch of at least 2 "
            "(sizes 0 and 1 are specialised while tracing), dynamic={input: {axis: label}}, or "
            "dynamic=False for a fixed-shape graph"
        )
    return dims


# ----------------------------------------------------------------------------- outputs


def module_out_keys(module: nn.Module) -> list[str] | None:
    keys = getattr(module, "out_keys", None)
    if keys is None:
        return None
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


Cases = list[tuple[str, dict[str, torch.Tensor], dict[str, torch.Tensor]]]


@dataclass
class GoldenSpec:
    """What the writer puts in ``X.golden/``: ``cases`` ``(name, inputs, reference outputs)``, the
    sample's default ``rtol``/``atol``, per-output ``tolerances`` and, for a train step, the
    ``state`` feedback and ``initial_state``."""

    kind: str
    cases: Cases
    rtol: float
    atol: float
    tolerances: dict[str, dict[str, float]] = field(default_factory=dict)
    state: dict[str, str] | None = None
    initial_state: dict[str, torch.Tensor] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def reference_cases(
    cases: Sequence[tuple[str, Mapping[str, torch.Tensor]]],
    run_reference: Any,
    run_low: Any,
    dtype: torch.dtype,
) -> tuple[Cases, dict[str, dict[str, float]], dict[str, Any]]:
    """``(cases with outputs, per-output tolerances, index extras)`` for golden ``cases``.

    ``run_reference(inputs)``: the float64 eager outputs (the reference, cast to ``dtype`` in the
    sample); ``run_low(inputs)``: eager in ``dtype``. Below float64 each float output's tolerance
    is widened by eager's own error (``rlexport.artifact.tolerance.output_tolerance``, measured on
    the inputs and ulp-jittered copies over all cases); an output that two float64 runs do not
    reproduce (a module drawing random numbers) keeps the defaults."""
    lower = is_low_precision(dtype)
    errors: dict[str, float | None] = {}
    out: Cases = []
    for i, (name, inputs) in enumerate(cases):
        with torch.no_grad():
            ref = run_reference(inputs)
        if lower:
            try:
                merge_errors(errors, conditioning_errors(run_low, lambda inputs=inputs: run_reference(inputs), inputs, ref, seed=i))
            except Exception:  # noqa: BLE001 - no eager kernels in this dtype: keep the defaults
                lower, errors = False, {}
        outputs = {n: (o.to(dtype) if o.dtype.is_floating_point else o).detach().cpu() for n, o in ref.items()}
        out.append((name, {k: v.detach().cpu() for k, v in inputs.items()}, outputs))
    tols = {n: output_tolerance(dtype, err) for n, err in errors.items()}
    return out, tols, ({"tolerance_rule": tolerance_rule(dtype)} if tols else {})


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
    def args(self) -> tuple[torch.Tensor, ...]:
        return tuple(self.example[n] for n in self.input_names)

    def metadata(self, fmt: str, extra: Mapping[str, Any] | None = None) -> dict:
        """``X.json`` of a forward artifact of this plan."""
        rtol, atol = tolerances(self.dtype)
        return artifact_metadata(
            fmt, "forward", self.original, self.dtype,
            {n: tensor_spec(self.example[n], self.dims.get(n)) for n in self.input_names},
            {n: tensor_spec(t, self.output_dims.get(n)) for n, t in zip(self.output_names, self.outputs)},
            self.dims, rtol, atol, **dict(extra or {}),
        )

    def golden(self) -> GoldenSpec:
        """The golden sample: :func:`golden_inputs` cases, reference outputs from the float64 eager
        module cast to the artifact dtype, conditioning-aware tolerances below float64."""
        reference = cast_module(self.original, torch.float64)

        def run(module: nn.Module, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            out = as_tuple(module(**inputs))
            return {n: out[j] for n, j in zip(self.output_names, self.output_indices)}

        cases, tols, extra = reference_cases(
            golden_inputs(self.example, self.dims),
            lambda x: run(reference, cast_example(x, torch.float64)),
            lambda x: run(self.module, x),
            self.dtype,
        )
        rtol, atol = tolerances(self.dtype)
        return GoldenSpec("forward", cases, rtol, atol, tols, extra=extra)


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
