"""Gradient graphs: loss values and parameter gradients of a keyword-forward loss, in one ONNX graph.

The loss is any ``nn.Module`` called as ``loss(**batch)`` that returns a tensor or a tuple of
tensors named by ``loss.out_keys`` (or the ``out_keys`` argument). The total loss is the sum of
the outputs whose name starts with ``loss_`` (TorchRL's convention); gradients are those of the
total w.r.t. every trainable parameter. Whatever the loss does to its own parameters (e.g.
``separate_losses=True`` detaching shared parameters in the critic loss) is part of its forward
and therefore part of the graph.

How the graph is made (the route that works in torch 2.13, see ``docs``/export probes): the loss
is made functional with ``torch.func.functional_call`` over a ``{name: tensor}`` dict of
parameters and buffers; ``torch.func.grad_and_value`` differentiates it; ``make_fx(...,
tracing_mode="symbolic")`` traces that into an aten graph with flat positional inputs; that graph
module goes through ``torch.export`` (dynamic batch, and time when the batch has a time axis)
and ``torch.onnx.export``. Parameters and buffers are graph *inputs*, never baked constants.

Graph names (one scheme for gradient and train-step graphs):

- inputs ``param.<name>`` (trainable parameters, ``loss.named_parameters()`` names),
  ``buffer.<name>`` (buffers and frozen parameters), then the batch keywords as given;
- outputs: the loss's ``out_keys`` (e.g. ``loss_objective``), then ``grad.<name>`` per parameter.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from rlexport.export.common import onnx_metadata, set_onnx_metadata, sidecar_paths
from rlexport.inputs import check_tensor

Tensor = torch.Tensor

PARAM_PREFIX = "param."
BUFFER_PREFIX = "buffer."
GRAD_PREFIX = "grad."
NEW_PREFIX = "new."

DTYPE_NAMES = {
    torch.float32: "float32",
    torch.float64: "float64",
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
    torch.int64: "int64",
    torch.int32: "int32",
    torch.bool: "bool",
}


def dtype_name(dtype: torch.dtype) -> str:
    return DTYPE_NAMES.get(dtype, str(dtype).replace("torch.", ""))


# --------------------------------------------------------------------------------------------
# the functional view of a loss


@dataclass
class FunctionalLoss:
    """A loss module seen as a pure function of ``(params, buffers, batch)``.

    ``params``/``buffers`` hold the module's tensors (detached) under their module names;
    ``batch`` holds the example's tensors under their keyword names.
    """

    module: nn.Module
    out_keys: tuple[str, ...]
    params: dict[str, Tensor]
    buffers: dict[str, Tensor]
    batch: dict[str, Tensor]
    loss_keys: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.loss_keys = tuple(k for k in self.out_keys if k.startswith("loss_"))
        if not self.loss_keys:
            raise ValueError(
                f"{type(self.module).__name__}: no output name starts with 'loss_' (out_keys "
                f"{list(self.out_keys)}); the total loss is the sum of those outputs"
            )

    def outputs(self, params: Mapping[str, Tensor], buffers: Mapping[str, Tensor],
                batch: Mapping[str, Tensor]) -> tuple[Tensor, ...]:
        out = torch.func.functional_call(self.module, {**params, **buffers}, args=(), kwargs=dict(batch))
        out = tuple(out) if isinstance(out, (tuple, list)) else (out,)
        if len(out) != len(self.out_keys):
            raise ValueError(
                f"{type(self.module).__name__} returned {len(out)} outputs but out_keys has "
                f"{len(self.out_keys)}: {list(self.out_keys)}"
            )
        return out

    def total(self, outputs: Sequence[Tensor]) -> Tensor:
        total = None
        for key, value in zip(self.out_keys, outputs):
            if key in self.loss_keys:
                if value.ndim != 0:
                    raise ValueError(
                        f"{type(self.module).__name__}: output {key!r} has shape {list(value.shape)}; "
                        "a differentiated loss term must be a scalar (use a reducing 'reduction')"
                    )
                total = value if total is None else total + value
        return total

    def grad_and_outputs(self, params, buffers, batch) -> tuple[dict[str, Tensor], tuple[Tensor, ...]]:
        """``(grads of the total loss w.r.t. params, loss outputs)``.

        Under ``make_fx`` tracing this runs ``torch.autograd.grad`` on fresh leaves, so the
        backward ops are recorded into the graph (AOTAutograd's joint tracing); ``torch.cond``
        inside the loss (the time scan of the value estimators) traces this way, while under
        ``torch.func.grad`` it would need dynamo. ``GRAD_MODE = "func"`` selects
        ``torch.func.grad_and_value`` instead.
        """
        if GRAD_MODE == "func":
            def f(p):
                outs = self.outputs(p, buffers, batch)
                return self.total(outs), outs

            grads, (_, outs) = torch.func.grad_and_value(f, has_aux=True)(dict(params))
            return grads, outs
        names = list(params)
        with torch.enable_grad():
            leaves = {n: params[n].detach().requires_grad_(True) for n in names}
            outs = self.outputs(leaves, buffers, batch)
            total = self.total(outs)
            if total.requires_grad:
                grads = torch.autograd.grad(total, [leaves[n] for n in names], allow_unused=True)
            else:
                grads = [None] * len(names)
        grads = {n: (torch.zeros_like(params[n]) if g is None else g) for n, g in zip(names, grads)}
        return grads, tuple(o.detach() for o in outs)


#: How gradients are traced: ``"autograd"`` (``torch.autograd.grad`` inside ``make_fx``) or
#: ``"func"`` (``torch.func.grad_and_value``). Both give the same graphs where both trace.
GRAD_MODE = "autograd"


def _out_keys(loss: nn.Module, out_keys: Sequence[str] | None) -> tuple[str, ...]:
    if out_keys is not None:
        return tuple(out_keys)
    keys = getattr(loss, "out_keys", None)
    if keys is None:
        raise TypeError(
            f"{type(loss).__name__} has no 'out_keys'; pass out_keys=[...] naming its outputs in order"
        )
    from rlexport.inputs import flatten_key

    return tuple(flatten_key(k) for k in keys)


def functional_loss(
    loss: nn.Module,
    example: Mapping[str, Tensor],
    *,
    out_keys: Sequence[str] | None = None,
    dtype: torch.dtype | None = None,
    frozen_unused: bool = True,
    owner: str = "export_grad",
) -> FunctionalLoss:
    """Collect a loss module's parameters, buffers and example batch.

    ``dtype`` (if given) converts a *copy* of the module and the example's floating tensors.
    Trainable parameters are those with ``requires_grad``; with ``frozen_unused`` (the default),
    a parameter that receives no gradient in an eager backward on ``example`` is also treated as
    frozen (``torch.optim`` skips such parameters: no state, no step).
    """
    if not isinstance(loss, nn.Module):
        raise TypeError(f"{owner}: the loss must be an nn.Module, got {type(loss).__name__}")
    if not isinstance(example, Mapping) or not example:
        raise TypeError(f"{owner}: example must be a non-empty mapping keyword -> tensor")
    batch = {}
    for name, value in example.items():
        check_tensor(owner, name, value)
        if dtype is not None and value.dtype.is_floating_point:
            value = value.to(dtype)
        batch[name] = value.detach()
    if dtype is not None:
        loss = copy.deepcopy(loss).to(dtype)
    keys = _out_keys(loss, out_keys)

    trainable = {n: p for n, p in loss.named_parameters() if p.requires_grad}
    frozen = {n: p for n, p in loss.named_parameters() if not p.requires_grad}
    if frozen_unused and trainable:
        for p in trainable.values():
            p.grad = None
        probe = FunctionalLoss(loss, keys, {}, {}, batch)
        outs = loss(**batch)
        outs = tuple(outs) if isinstance(outs, (tuple, list)) else (outs,)
        total = probe.total(outs)
        if total.requires_grad:
            grads = torch.autograd.grad(total, list(trainable.values()), allow_unused=True)
        else:
            grads = [None] * len(trainable)
        unused = [n for n, g in zip(trainable, grads) if g is None]
        if unused:
            warnings.warn(
                f"{owner}: parameters {unused} get no gradient from the total loss on the example; "
                "they are treated as frozen (graph inputs 'buffer.<name>'), as torch.optim skips them",
                stacklevel=3,
            )
            for n in unused:
                frozen[n] = trainable.pop(n)
    params = {n: p.detach() for n, p in trainable.items()}
    buffers = {n: p.detach() for n, p in frozen.items()}
    buffers.update({n: b.detach() for n, b in loss.named_buffers()})
    return FunctionalLoss(loss, keys, params, buffers, batch)


# --------------------------------------------------------------------------------------------
# dynamic shapes


def infer_batch_dims(batch: Mapping[str, Tensor]) -> int:
    """How many leading dims are ``[batch]`` or ``[batch, time]``: the length (≤ 2) of the
    longest shape prefix that every non-scalar batch tensor shares."""
    shapes = [tuple(t.shape) for t in batch.values() if t.ndim >= 1]
    if not shapes:
        return 0
    n = 0
    while n < 2 and all(len(s) > n for s in shapes) and len({s[n] for s in shapes}) == 1:
        n += 1
    return n


_DIM_NAMES = ("batch", "time")


def batch_axes(
    batch: Mapping[str, Tensor],
    dynamic: bool | Mapping[str, Mapping[int, str]] = True,
    batch_dims: int | None = None,
    owner: str = "export",
    module: nn.Module | None = None,
) -> dict[str, dict[int, str]]:
    """``{input name: {axis: dim label}}`` for the dynamic axes of the batch inputs.

    ``dynamic=True`` without ``batch_dims``: the rule every rlexport exporter uses
    (``rlexport.export.common.resolve_dynamic_dims``: the module's ``dynamic_dims(example)`` hook,
    else inference from the example). ``batch_dims=n``: the first ``n`` axes (``"batch"``, then
    ``"time"``) of every batch tensor with at least ``n`` dims. A mapping gives the axes
    explicitly; ``False`` makes every shape static.
    """
    if dynamic is False or dynamic is None:
        return {}
    if isinstance(dynamic, Mapping) or batch_dims is None:
        from rlexport.export.common import resolve_dynamic_dims

        try:
            axes = resolve_dynamic_dims(module if module is not None else nn.Module(), dict(batch), dynamic)
        except ValueError as err:
            raise ValueError(f"{owner}: {err}") from None
        if dynamic is True and not axes and any(t.ndim >= 1 for t in batch.values()):
            raise ValueError(
                f"{owner}: found no batch axis in the example (shapes "
                f"{ {k: list(v.shape) for k, v in batch.items()} }); give an example batch of at least 2 "
                "(sizes 0 and 1 are specialised while tracing), dynamic={{input: {{axis: label}}}}, or "
                "dynamic=False for a fixed-shape graph"
            )
        return axes
    n = int(batch_dims)
    if n > 2:
        raise ValueError(f"{owner}: batch_dims={n}; at most 2 leading dims (batch, time) are dynamic")
    axes = {}
    for name, t in batch.items():
        if t.ndim >= n and n > 0:
            axes[name] = {i: _DIM_NAMES[i] for i in range(n)}
    for name, ax in axes.items():
        for a in ax:
            if batch[name].shape[a] < 2:
                raise ValueError(
                    f"{owner}: input {name!r} has size {batch[name].shape[a]} on its dynamic axis {a} "
                    f"({ax[a]}); give an example with at least 2 there (sizes 0 and 1 are specialised "
                    "while tracing)"
                )
    return axes


# --------------------------------------------------------------------------------------------
# tracing and ONNX writing


@dataclass
class TracedSpec:
    input_names: list[str]
    output_names: list[str]
    example: list[Tensor]
    axes: dict[str, dict[int, str]]  # input name -> {axis: dim name}


class _SymbolicLinear(torch.overrides.TorchFunctionMode):
    """``F.linear`` on inputs with more than 2 dims as ``matmul`` (+ bias) while tracing
    (``GRAD_MODE == "func"`` only; the default autograd tracing keeps sizes symbolic).

    Under ``torch.func.grad`` the C++ ``linear`` kernel flattens a ``[B, T, F]`` input with
    concrete sizes, which specialises batch and time in a symbolic trace (torch 2.13);
    ``matmul`` keeps them symbolic. Same math, values equal up to rounding.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.nn.functional.linear:
            x, w = args[0], args[1] if len(args) > 1 else kwargs["weight"]
            b = args[2] if len(args) > 2 else kwargs.get("bias")
            if x.dim() > 2:
                out = torch.matmul(x, w.t())
                return out if b is None else out + b
        return func(*args, **kwargs)


def _dedupe_cond_operands(gm) -> None:
    """``make_fx`` may pass one value several times to a ``torch.cond`` (a symbolic size lifted
    into both branches); ``torch.export`` then names two branch placeholders alike and fails.
    Keep each operand once and point the branches' duplicate placeholders at the first one."""
    changed = False
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target is not torch.ops.higher_order.cond:
            continue
        pred, true_g, false_g, operands = node.args[:4]
        operands = list(operands)
        first: dict[Any, int] = {}
        dup: dict[int, int] = {}
        for i, op in enumerate(operands):
            key = op if isinstance(op, torch.fx.Node) else ("const", repr(op))
            if key in first:
                dup[i] = first[key]
            else:
                first[key] = i
        if not dup:
            continue
        for branch in (true_g, false_g):
            sub = getattr(gm, branch.target)
            phs = [p for p in sub.graph.nodes if p.op == "placeholder"]
            for i, j in dup.items():
                phs[i].replace_all_uses_with(phs[j])
            for i in sorted(dup, reverse=True):
                sub.graph.erase_node(phs[i])
            sub.recompile()
        node.args = (pred, true_g, false_g, tuple(op for i, op in enumerate(operands) if i not in dup), *node.args[4:])
        changed = True
    if changed:
        gm.recompile()


def trace_functional(fn: Callable[..., tuple[Tensor, ...]], spec: TracedSpec) -> torch.export.ExportedProgram:
    """``make_fx(fn, symbolic)`` then ``torch.export`` of the traced graph with dynamic axes."""
    from torch.fx.experimental import _config as fx_config
    from torch.fx.experimental.proxy_tensor import make_fx

    import contextlib

    linear_mode = _SymbolicLinear() if GRAD_MODE == "func" else contextlib.nullcontext()
    with fx_config.patch(use_duck_shape=False), linear_mode:
        gm = make_fx(fn, tracing_mode="symbolic", _allow_non_fake_inputs=True)(*spec.example)
    _dedupe_cond_operands(gm)

    dims: dict[str, torch.export.Dim] = {}

    def dim(name: str):
        if name not in dims:
            dims[name] = torch.export.Dim(name.replace(".", "_"))
        return dims[name]

    dynamic_shapes = tuple(
        {a: dim(n) for a, n in spec.axes[name].items()} if name in spec.axes else None
        for name in spec.input_names
    )

    class Flat(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *args):
            return tuple(self.inner(*args))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ep = torch.export.export(Flat(gm), tuple(spec.example), dynamic_shapes=(dynamic_shapes,), strict=False)
    return ep


def exported_to_onnx(ep: torch.export.ExportedProgram, spec: TracedSpec, *, opset: int | None = None):
    """``torch.onnx.export`` of ``ep`` with the graph's names; returns the ``onnx.ModelProto``."""
    import onnx

    from rlexport.export.common import quiet

    with quiet():  # the same silencing as every other exporter (deprecations, torchvision notices)
        prog = torch.onnx.export(
            ep,
            dynamo=True,
            input_names=spec.input_names,
            output_names=spec.output_names,
            opset_version=opset,
            external_data=False,
            verbose=False,
        )
    proto = prog.model_proto
    got_in = [i.name for i in proto.graph.input]
    got_out = [o.name for o in proto.graph.output]
    if got_in != spec.input_names or got_out != spec.output_names:
        raise RuntimeError(
            "torch.onnx.export changed the graph signature: inputs "
            f"{got_in} (expected {spec.input_names}), outputs {got_out} (expected {spec.output_names})"
        )
    _name_dynamic_dims(proto, spec)
    simplify_pow(proto)
    onnx.checker.check_model(proto, full_check=False)
    return proto


def simplify_pow(proto) -> int:
    """Rewrite ``Pow(x, c)`` with a constant scalar ``c`` in {1, 2, 0.5} as ``Identity``,
    ``Mul(x, x)``, ``Sqrt(x)``: ONNX Runtime's Pow calls ``std::pow`` per element (several times
    slower on large batches); the results are the same (torch computes ``x**2`` as ``x*x``).
    Returns the number of nodes rewritten."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    consts = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    for n in proto.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    consts[n.output[0]] = numpy_helper.to_array(a.t)
    count = 0
    nodes = list(proto.graph.node)
    exponents = set()
    for i, n in enumerate(nodes):
        if n.op_type != "Pow" or n.domain not in ("", "ai.onnx"):
            continue
        c = consts.get(n.input[1])
        if c is None or np.size(c) != 1:
            continue
        c = float(np.asarray(c).reshape(()))
        x = n.input[0]
        if c == 2.0:
            new = helper.make_node("Mul", [x, x], list(n.output), name=n.name)
        elif c == 1.0:
            new = helper.make_node("Identity", [x], list(n.output), name=n.name)
        elif c == 0.5:
            new = helper.make_node("Sqrt", [x], list(n.output), name=n.name)
        else:
            continue
        nodes[i] = new
        exponents.add(n.input[1])
        count += 1
    if count:
        used = {o.name for o in proto.graph.output}

        def collect(graph_nodes):
            for n in graph_nodes:
                used.update(n.input)
                for a in n.attribute:  # If/Loop/Scan bodies read outer-scope names
                    if a.type == onnx.AttributeProto.GRAPH:
                        collect(a.g.node)
                        used.update(o.name for o in a.g.output)
                    for g in a.graphs:
                        collect(g.node)
                        used.update(o.name for o in g.output)

        collect(nodes)
        unused = exponents - used
        nodes = [n for n in nodes if not (n.op_type == "Constant" and n.output[0] in unused)]
        del proto.graph.node[:]
        proto.graph.node.extend(nodes)
        keep = [i for i in proto.graph.initializer if i.name not in unused]
        del proto.graph.initializer[:]
        proto.graph.initializer.extend(keep)
    return count


def _name_dynamic_dims(proto, spec: TracedSpec) -> None:
    """Rename the symbolic dims (``s12``...) to ``batch``/``time`` everywhere in the graph."""
    rename: dict[str, str] = {}
    for vi in proto.graph.input:
        axes = spec.axes.get(vi.name, {})
        for a, d in enumerate(vi.type.tensor_type.shape.dim):
            if a in axes and d.dim_param:
                rename.setdefault(d.dim_param, axes[a])
    if not rename:
        return

    def fix(values):
        for vi in values:
            if not vi.type.HasField("tensor_type"):
                continue
            for d in vi.type.tensor_type.shape.dim:
                if d.dim_param in rename:
                    d.dim_param = rename[d.dim_param]

    fix(proto.graph.input)
    fix(proto.graph.output)
    fix(proto.graph.value_info)


def build_metadata(kind: str, path, loss: nn.Module, dtype: torch.dtype, inputs: Mapping[str, dict],
                   outputs: Mapping[str, dict], axes: Mapping[str, Mapping[int, str]], rtol: float, atol: float,
                   **extra) -> dict[str, Any]:
    """Metadata in the shape every rlexport exporter writes (``rlexport.export.common``):
    ``format``, ``kind``, ``inputs``/``outputs`` (name -> dtype, shape, role; graph order),
    ``input_names``, ``out_keys`` (the graph's outputs), ``dynamic_axes``, ``rtol``/``atol``."""
    from rlexport import __version__

    try:
        from rlexport.export.common import module_config

        config = module_config(loss)
    except Exception:  # noqa: BLE001
        config = repr(loss)
    meta = {
        "format": "onnx",
        "artifact": os.path.basename(os.fspath(path)),
        "kind": kind,
        "rlexport_version": __version__,
        "torch_version": torch.__version__,
        "class": f"{type(loss).__module__}.{type(loss).__qualname__}",
        "config": config,
        "dtype": dtype_name(dtype),
        "inputs": dict(inputs),
        "outputs": dict(outputs),
        "input_names": list(inputs),
        "out_keys": list(outputs),
        "dynamic_axes": {n: {str(d): l for d, l in s.items()} for n, s in axes.items()},
        "rtol": rtol,
        "atol": atol,
        "naming": NAMING,
    }
    meta.update(extra)
    return meta


NAMING = (
    "inputs: param.<name> (trainable parameters, loss.named_parameters() names), "
    "<optimizer>.<slot>.<name> and <optimizer>.step (optimizer state), hp.<name> (hyper-parameters, "
    "float64 0-d; hp.nesterov bool), buffer.<name> (gradient graphs only; train steps bake buffers in), "
    "then the batch keywords; outputs: new.<input name> for every updated state input, the loss's "
    "out_keys, grad_norm (pre-clip total norm), grad.<name> (gradient graphs)"
)


def write_artifact(proto, path: str | os.PathLike, metadata: Mapping[str, Any],
                   golden: Callable[[Any], None] | None = None, verify: Callable[[Any], None] | None = None) -> None:
    """Write ``X.onnx`` (metadata as ``rlexport.<key>`` metadata_props, JSON values), ``X.json``
    and, via ``golden(golden_dir)``, ``X.golden/``: staged, then ``verify(staged onnx path)``,
    then moved into place together (nothing is written when a step fails)."""
    import onnx

    from rlexport.export.common import Staging, write_json

    set_onnx_metadata(proto, metadata)
    with Staging(path) as stage:
        onnx.save(proto, str(stage.artifact))
        write_json(stage.json, dict(metadata))
        if golden is not None:
            golden(stage.golden)
        if verify is not None:
            verify(stage.artifact)
        stage.commit()


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of an artifact: ``X.json`` if present, else the ONNX ``metadata_props``."""
    mpath = sidecar_paths(path)[1]
    if mpath.exists():
        return json.loads(mpath.read_text())
    import onnx

    model = onnx.load(os.fspath(path), load_external_data=False)
    meta = onnx_metadata({p.key: p.value for p in model.metadata_props})
    if not meta:
        raise FileNotFoundError(f"{path}: no {mpath} and no 'rlexport.*' metadata in the model")
    return meta


def golden_dir(path: str | os.PathLike) -> str:
    """``X.golden`` beside the artifact ``X.onnx``."""
    return os.fspath(sidecar_paths(path)[2])


def io_spec(role: str, t: Tensor, axes: Mapping[int, str] | None = None, **extra) -> dict[str, Any]:
    """``{"dtype", "shape" (dynamic axes by label), "role", ...}`` of one graph input or output."""
    shape: list[Any] = list(t.shape)
    for a, n in (axes or {}).items():
        shape[a] = n
    return {"dtype": dtype_name(t.dtype), "shape": shape, "role": role, **extra}


def float_dtype(fl: "FunctionalLoss") -> torch.dtype:
    for t in (*fl.params.values(), *fl.batch.values()):
        if t.dtype.is_floating_point:
            return t.dtype
    return torch.float32


# --------------------------------------------------------------------------------------------
# export_grad


def export_grad(
    loss: nn.Module,
    example: Mapping[str, Tensor],
    path: str | os.PathLike,
    *,
    dynamic: bool | Mapping[str, Mapping[int, str]] = True,
    dtype: torch.dtype | str | None = None,
    batch_dims: int | None = None,
    out_keys: Sequence[str] | None = None,
    opset: int | None = None,
    golden: bool = True,
    verify: bool = True,
) -> dict[str, Any]:
    """Write ``path`` (ONNX): inputs ``param.<name>``, ``buffer.<name>``, the batch keywords;
    outputs the loss values (``out_keys``) then ``grad.<name>`` — the gradient of the total loss
    (sum of the ``loss_*`` outputs) — for every trainable parameter.

    ``dtype`` converts a copy of the loss and the example's floating tensors. ``dynamic=True``
    makes the batch axis (and a time axis, see :func:`batch_axes`) dynamic. Also writes ``X.json``
    (metadata; also ``rlexport.*`` ONNX metadata_props) and, with ``golden``, ``X.golden/``
    (kind ``"grad"``: float64 eager autograd at several batch sizes, cast to ``dtype``), which
    ``verify`` checks the graph against in ONNX Runtime before anything is written.
    Returns the metadata.
    """
    dtype = _parse_dtype(dtype)
    fl = functional_loss(loss, example, out_keys=out_keys, dtype=dtype, owner="export_grad")
    pnames, bnames, xnames = list(fl.params), list(fl.buffers), list(fl.batch)
    input_names = [PARAM_PREFIX + n for n in pnames] + [BUFFER_PREFIX + n for n in bnames] + xnames
    output_names = list(fl.out_keys) + [GRAD_PREFIX + n for n in pnames]
    check_unique(input_names + output_names, "export_grad")
    axes = batch_axes(fl.batch, dynamic, batch_dims, owner="export_grad", module=fl.module)
    np_, nb = len(pnames), len(bnames)

    def flat_fn(*flat):
        params = dict(zip(pnames, flat[:np_]))
        buffers = dict(zip(bnames, flat[np_:np_ + nb]))
        batch = dict(zip(xnames, flat[np_ + nb:]))
        grads, outs = fl.grad_and_outputs(params, buffers, batch)
        return (*outs, *(grads[n] for n in pnames))

    example_flat = [*fl.params.values(), *fl.buffers.values(), *fl.batch.values()]
    spec = TracedSpec(input_names, output_names, example_flat, axes)
    ep = trace_functional(flat_fn, spec)
    proto = exported_to_onnx(ep, spec, opset=opset)
    example_out = flat_fn(*example_flat)
    out_axes = output_axes(ep, spec)
    fdtype = float_dtype(fl)
    rtol, atol = default_tolerances(fdtype, kind="grad")
    inputs = {PARAM_PREFIX + n: io_spec("param", fl.params[n], module_name=n) for n in pnames}
    inputs.update({BUFFER_PREFIX + n: io_spec("buffer", fl.buffers[n], module_name=n) for n in bnames})
    inputs.update({n: io_spec("batch", fl.batch[n], axes.get(n)) for n in xnames})
    outputs = {}
    for i, (name, t) in enumerate(zip(output_names, example_out)):
        if i < len(fl.out_keys):
            outputs[name] = io_spec("loss" if name in fl.loss_keys else "loss_aux", t, out_axes.get(name))
        else:
            outputs[name] = io_spec("grad", t, out_axes.get(name), param=PARAM_PREFIX + name[len(GRAD_PREFIX):])
    metadata = build_metadata(
        "grad", path, fl.module, fdtype, inputs, outputs, axes, rtol, atol,
        loss_out_keys=list(fl.out_keys), loss_keys=list(fl.loss_keys),
        total_loss=" + ".join(fl.loss_keys),
    )
    write_artifact(
        proto, path, metadata,
        golden=(lambda d: _write_grad_golden(fl, d, path, axes, rtol, atol)) if golden else None,
        verify=(lambda p: verify_golden(p, golden_dir(p))) if (golden and verify) else None,
    )
    return metadata


def _parse_dtype(dtype):
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    table = {"float32": torch.float32, "float64": torch.float64}
    if dtype not in table:
        raise ValueError(f"dtype={dtype!r} is not supported; choose one of {list(table)}")
    return table[dtype]


def default_tolerances(dtype: torch.dtype, kind: str = "grad") -> tuple[float, float]:
    """``(rtol, atol)`` of a golden sample against the float64 eager reference."""
    if dtype == torch.float64:
        return (1e-7, 1e-9)
    return (1e-4, 1e-5)


def onnx_load_quiet(path):
    import onnx

    return onnx.load(os.fspath(path), load_external_data=False)


def verify_golden(onnx_path, golden_path, providers=None) -> None:
    """Run the golden sample's cases through ONNX Runtime (feeding train-step state back);
    raise ``ExportError`` naming the first output that differs beyond the sample's tolerances."""
    import numpy as np
    import onnxruntime as ort

    from rlexport.export.common import ExportError
    from rlexport.export.golden import read_golden

    model = onnx_load_quiet(onnx_path)
    random_ops = sorted({n.op_type for n in model.graph.node if n.op_type.startswith("Random")})
    if random_ops:
        raise ExportError(
            f"{onnx_path}: the graph draws random numbers ({', '.join(random_ops)}), so no reference can match "
            "it; give the noise as an input (e.g. 'entropy_noise' for a Monte-Carlo entropy) or export with "
            "verify=False"
        )
    sample = read_golden(golden_path)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(os.fspath(onnx_path), sess_options=opts,
                                providers=providers or ["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    state = dict(sample.initial_state)
    for case in sample.cases:
        got = dict(zip(names, sess.run(names, {**state, **case.inputs})))
        for name, want in case.outputs.items():
            have = got[name]
            rtol, atol = sample.tolerance(case, name)  # the output's own entry, else the sample's
            if have.shape != want.shape or not np.allclose(have, want, rtol=rtol, atol=atol, equal_nan=True):
                err = np.max(np.abs(have.astype(np.float64) - want.astype(np.float64))) if have.shape == want.shape else None
                raise ExportError(
                    f"{onnx_path}: output {name!r} of golden case {case.name!r} differs from the eager "
                    f"reference (max abs err {err}, shapes {list(have.shape)} vs {list(want.shape)}, "
                    f"rtol={rtol}, atol={atol}); nothing was written"
                )
        state = {i: got[o] for i, o in sample.state.items()}


def output_axes(ep: torch.export.ExportedProgram, spec: TracedSpec) -> dict[str, dict[int, str]]:
    """Which output axes are symbolic (named after the input dim they equal, when known)."""
    sym_names: dict[str, str] = {}
    placeholders = [n for n in ep.graph.nodes if n.op == "placeholder"]
    user_inputs = [n for n in placeholders if n.name in set(ep.graph_signature.user_inputs)]
    for node, name in zip(user_inputs, spec.input_names):
        val = node.meta.get("val")
        if val is None:
            continue
        for a, dname in spec.axes.get(name, {}).items():
            sym_names.setdefault(str(val.shape[a]), dname)
    out_node = next(n for n in ep.graph.nodes if n.op == "output")
    result = {}
    for name, node in zip(spec.output_names, out_node.args[0]):
        val = getattr(node, "meta", {}).get("val") if hasattr(node, "meta") else None
        if val is None or not hasattr(val, "shape"):
            continue
        ax = {a: sym_names.get(str(s), str(s)) for a, s in enumerate(val.shape) if not isinstance(s, int)
              and not str(s).isdigit()}
        if ax:
            result[name] = ax
    return result


def check_unique(names: Sequence[str], owner: str) -> None:
    seen = set()
    for n in names:
        if n in seen:
            raise ValueError(f"{owner}: graph name {n!r} is used twice; rename the batch keyword or loss output")
        seen.add(n)


def resample_batch(batch: Mapping[str, Tensor], size: int, generator: torch.Generator,
                   axes: Mapping[str, Mapping[int, str]]) -> dict[str, Tensor]:
    """A batch of ``size`` rows drawn (with replacement) from ``batch``'s rows along the
    ``"batch"`` axis; tensors without that axis are kept."""
    n = None
    for name, ax in axes.items():
        for a, d in ax.items():
            if d == "batch":
                n = batch[name].shape[a]
    if n is None:
        return dict(batch)
    idx = torch.randint(0, n, (size,), generator=generator)
    out = {}
    for name, t in batch.items():
        ax = axes.get(name, {})
        batch_axis = next((a for a, d in ax.items() if d == "batch"), None)
        out[name] = t if batch_axis is None else t.index_select(batch_axis, idx)
    return out


def golden_sizes(n: int, k: int = 3) -> list[int]:
    """``k`` distinct batch sizes around the example's ``n`` (all ≥ 2)."""
    sizes = [n, max(2, n // 2 + 1), 2 * n + 3, max(2, n - 1), n + 5]
    out: list[int] = []
    for s in sizes:
        if s not in out:
            out.append(s)
    while len(out) < k:
        out.append(out[-1] + 7)
    return out[:k]


def _write_grad_golden(fl: FunctionalLoss, gdir, path, axes, rtol, atol) -> None:
    """Golden sample of a gradient graph: float64 eager autograd at a few batch sizes.

    Below float64, each float output (losses, ``grad.*``) also gets its conditioning-aware
    tolerance (``rlexport.export.common.output_tolerance``, docs/design.md): the same eager
    autograd is run in the artifact dtype on each case (and on ulp-jittered copies,
    ``conditioning_errors``) and its largest error against the float64 reference widens atol."""
    from rlexport.export.common import conditioning_errors, merge_errors, output_tolerance
    from rlexport.export.golden import write_golden
    from rlexport.export.writer import tolerance_rule

    dtype = float_dtype(fl)
    lower = dtype.is_floating_point and torch.finfo(dtype).bits < 64
    fl64 = functional_loss(fl.module, fl.batch, out_keys=fl.out_keys, dtype=torch.float64,
                           frozen_unused=False, owner="export_grad")
    gen = torch.Generator().manual_seed(0)
    sizes = golden_sizes(batch_size(fl.batch, axes)) if axes else [None]

    def run(f: FunctionalLoss, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Graph inputs (``param.*``, ``buffer.*``, batch) -> graph outputs, eager autograd on ``f``."""
        to = float_dtype(f)
        x = {k: (v.to(to) if v.dtype.is_floating_point else v) for k, v in inputs.items()}
        params = {k: x[PARAM_PREFIX + k] for k in fl.params}
        buffers = {k: x[BUFFER_PREFIX + k] for k in fl.buffers}
        grads, outs = f.grad_and_outputs(params, buffers, {k: x[k] for k in fl.batch})
        out = {k: v.detach() for k, v in zip(fl.out_keys, outs)}
        out.update({GRAD_PREFIX + k: grads[k].detach() for k in fl.params})
        return out

    errors: dict[str, float | None] = {}
    cases = []
    for i, size in enumerate(sizes):
        batch = fl.batch if size is None else resample_batch(fl.batch, size, gen, axes)
        inputs = {PARAM_PREFIX + k: v for k, v in fl.params.items()}
        inputs.update({BUFFER_PREFIX + k: v for k, v in fl.buffers.items()})
        inputs.update(batch)
        ref = run(fl64, inputs)
        if lower:
            try:
                merge_errors(errors, conditioning_errors(
                    lambda x: run(fl, x), lambda inputs=inputs: run(fl64, inputs), inputs, ref, seed=i))
            except Exception:  # noqa: BLE001 - no eager kernels in this dtype: keep the defaults
                lower, errors = False, {}
        outputs = {k: (v.to(dtype) if v.dtype.is_floating_point else v) for k, v in ref.items()}
        cases.append((f"b{size}" if size is not None else "example", inputs, outputs))
    tols = {n: output_tolerance(dtype, err) for n, err in errors.items()}
    write_golden(gdir, cases, artifact=os.path.basename(os.fspath(path)), kind="grad", rtol=rtol, atol=atol,
                 tolerances=tols, extra={"tolerance_rule": tolerance_rule(dtype)} if tols else None)


def batch_size(batch, axes) -> int:
    for name, ax in axes.items():
        for a, d in ax.items():
            if d == "batch":
                return batch[name].shape[a]
    return 2
