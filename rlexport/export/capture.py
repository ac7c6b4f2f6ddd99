"""Capture: a module or a functional step as a ``torch.export.ExportedProgram`` with dynamic dims.

- :func:`capture_module`: ``torch.export`` of a keyword-forward module (forward artifacts);
- :func:`capture_function`: ``make_fx(..., tracing_mode="symbolic")`` of a function of flat
  tensors (autograd graphs: gradients, train steps), then ``torch.export`` of the traced graph.
  Given a decomposition table (the ONNX exporter's, ``rlexport.export.onnx.onnx_decompositions``)
  ``make_fx`` decomposes while it traces and in-place ops on single-use intermediates become their
  out-of-place forms (:func:`functionalize_single_use`), so the program needs no second
  decomposition trace before translation.

Both go through the one :func:`positional_adapter` (inputs positional, in input-name order) and
the one dynamic-shapes declaration (:func:`torch_dynamic_shapes`: one ``torch.export.Dim`` per
label, retried with ``Dim.DYNAMIC`` when a guard on a dim fails the export).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.fx.experimental import _config as fx_config
from torch.fx.experimental.proxy_tensor import make_fx

from rlexport.export.plan import DynamicDims, ExportError, as_tuple, quiet

_ADAPTERS: dict[tuple[tuple[str, ...], bool], type] = {}


def positional_adapter(module: Callable, input_names: Sequence[str], indices: Sequence[int] | None = None, *,
                       keywords: bool = True) -> nn.Module:
    """An ``nn.Module`` whose ``forward`` takes the inputs positionally, in ``input_names`` order,
    calls ``module(a=a, b=b, ...)`` (``keywords``) or ``module(a, b, ...)``, and returns a tuple
    (the outputs at ``indices``).

    When every name is an identifier the arguments carry the names, so graph placeholders (and
    ONNX inputs) do too; otherwise (``param.actor.weight``) ``forward`` takes ``*args``."""
    names = tuple(input_names)
    named = all(n.isidentifier() for n in names)
    cls = _ADAPTERS.get((names, named))
    if cls is None:
        params = ", ".join(names) if named else "*args"
        pack = f"({', '.join(names)},)" if named else "args"
        src = f"def forward(self, {params}):\n    return self._select(self._call({pack}))\n"
        ns: dict[str, Any] = {}
        exec(compile(src, f"<rlexport adapter {len(names)} inputs>", "exec"), ns)
        cls = type("PositionalAdapter", (_AdapterBase,), {"forward": ns["forward"], "input_names": names, "named": named})
        _ADAPTERS[(names, named)] = cls
    return cls(module, indices, keywords)


class _AdapterBase(nn.Module):
    input_names: tuple[str, ...] = ()
    named = True

    def __init__(self, module: Callable, indices: Sequence[int] | None, keywords: bool):
        super().__init__()
        self.module = module
        self.indices = None if indices is None else tuple(indices)
        self.keywords = keywords

    def _call(self, args: tuple) -> Any:
        if self.keywords:
            return self.module(**dict(zip(self.input_names, args)))
        return self.module(*args)

    def _select(self, outputs: Any) -> tuple[torch.Tensor, ...]:
        out = as_tuple(outputs)
        if self.indices is not None:
            out = tuple(out[i] for i in self.indices)
        return out


def torch_dynamic_shapes(adapter: nn.Module, dims: DynamicDims, *, relaxed: bool = False) -> Any:
    """``dynamic_shapes`` for ``adapter``: one ``torch.export.Dim`` per label.

    ``relaxed``: ``Dim.DYNAMIC`` instead of named dims, so that a guard the graph adds (e.g.
    ``T != 2``) does not fail the export; labels are then restored in ONNX by input position and
    verification at other sizes decides."""
    if not dims:
        return None
    if relaxed:
        per_input = tuple({d: torch.export.Dim.DYNAMIC for d in dims.get(n, {})} or None for n in adapter.input_names)
    else:
        symbols = {lbl: torch.export.Dim(lbl, min=1) for spec in dims.values() for lbl in spec.values()}
        per_input = tuple({d: symbols[lbl] for d, lbl in dims.get(n, {}).items()} or None for n in adapter.input_names)
    return per_input if adapter.named else (per_input,)


def export_adapter(adapter: nn.Module, args: Sequence[torch.Tensor], dims: DynamicDims, what: str) -> torch.export.ExportedProgram:
    """``torch.export`` of ``adapter`` (non-strict) with the declared dims, retried relaxed."""
    try:
        with quiet():
            return torch.export.export(adapter, tuple(args), dynamic_shapes=torch_dynamic_shapes(adapter, dims), strict=False)
    except Exception as first:  # noqa: BLE001 - torch raises many types; keep the message
        err = first
        if dims and "Constraints violated" in str(first):
            # a guard such as ``T != 2`` on a dynamic dim: retry with Dim.DYNAMIC (guards become
            # runtime checks in the program); the verification at other sizes still decides.
            try:
                with quiet():
                    return torch.export.export(adapter, tuple(args), strict=False,
                                               dynamic_shapes=torch_dynamic_shapes(adapter, dims, relaxed=True))
            except Exception as second:  # noqa: BLE001
                err = second
        raise ExportError(
            f"torch.export of {what} failed (dynamic dims {dims or 'none'}): {type(err).__name__}: {str(err).strip()[:2000]}"
        ) from err


def capture_module(module: nn.Module, input_names: Sequence[str], args: Sequence[torch.Tensor], dims: DynamicDims,
                   indices: Sequence[int] | None = None, what: str | None = None) -> torch.export.ExportedProgram:
    """``torch.export`` of ``module`` called with keyword inputs (placeholders carry the names)."""
    adapter = positional_adapter(module, input_names, indices)
    return export_adapter(adapter, args, dims, what or type(module).__name__)


def capture_function(fn: Callable[..., tuple[torch.Tensor, ...]], input_names: Sequence[str],
                     args: Sequence[torch.Tensor], dims: DynamicDims, what: str,
                     decompositions: Mapping[Any, Callable] | None = None) -> torch.export.ExportedProgram:
    """``make_fx(fn, symbolic)`` (autograd recorded into the graph) then ``torch.export`` of the
    traced graph, taking ``args`` positionally in ``input_names`` order.

    ``decompositions``: an ATen decomposition table applied while tracing (in-place overloads are
    left out of it: :func:`functionalize_single_use` or the later decomposition handles them)."""
    table = None
    if decompositions:
        table = {op: fn_ for op, fn_ in decompositions.items()
                 if not (isinstance(op, torch._ops.OpOverload) and op._schema.is_mutable)}
    try:
        with fx_config.patch(use_duck_shape=False), quiet():
            gm = make_fx(fn, decomposition_table=table, tracing_mode="symbolic", _allow_non_fake_inputs=True)(*args)
    except Exception as err:  # noqa: BLE001
        raise ExportError(f"tracing {what} failed: {type(err).__name__}: {str(err).strip()[:2000]}") from err
    dedupe_cond_operands(gm)
    if table is not None:
        functionalize_single_use(gm)
    return export_adapter(positional_adapter(gm, input_names, keywords=False), args, dims, what)


def _returns_fresh_tensor(node: torch.fx.Node) -> bool:
    """Whether ``node`` is an ATen call whose result aliases none of its inputs (not a view)."""
    target = node.target
    return (node.op == "call_function" and isinstance(target, torch._ops.OpOverload)
            and not target._schema.is_mutable and all(r.alias_info is None for r in target._schema.returns))


def functionalize_single_use(gm: torch.fx.GraphModule) -> int:
    """Rewrite ``aten.<op>_(x, ...)`` as ``aten.<op>(x, ...)`` where ``x`` is a fresh intermediate
    (an ATen result aliasing no input) used by nothing else: nothing can observe the mutation, so
    the out-of-place op gives the same values (autograd's backward formulas write e.g.
    ``where(...).masked_fill_(mask, 0)``). Returns the number of nodes rewritten; other in-place
    calls are left for ``torch.export`` / the exporter's decomposition."""
    count = 0
    for node in gm.graph.nodes:
        target = node.target
        if node.op != "call_function" or not isinstance(target, torch._ops.OpOverload):
            continue
        name = target._schema.name.split("::")[-1]
        if not (target._schema.is_mutable and name.endswith("_") and node.args):
            continue
        x = node.args[0]
        if not (isinstance(x, torch.fx.Node) and _returns_fresh_tensor(x) and len(x.users) == 1):
            continue
        packet = getattr(torch.ops.aten, name[:-1], None)
        functional = getattr(packet, target._overloadname, None) if packet is not None else None
        if functional is None or functional._schema.is_mutable:
            continue
        node.target = functional
        count += 1
    if count:
        gm.graph.lint()
        gm.recompile()
    return count


def dedupe_cond_operands(gm: torch.fx.GraphModule) -> None:
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
