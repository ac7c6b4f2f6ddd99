"""Capture: a module or a functional step as a ``torch.export.ExportedProgram`` with dynamic dims.

- :func:`capture_module`: a keyword-forward module (forward artifacts). For ``.pt2``,
  AOTInductor and TorchScript, ``torch.export``; for ONNX (given the exporter's decomposition
  table) one decomposing ``make_fx`` trace of the module made functional (its parameters and
  buffers are the program's);
- :func:`capture_function`: a function of flat tensors (autograd graphs: gradients, train
  steps), one ``make_fx`` trace with autograd recorded into the graph.

The ONNX path traces ONCE: ``make_fx`` over fake inputs whose declared dims are one symbol per
label (:func:`symbolic_inputs`), decomposing by the exporter's table while it traces, in-place
ops on single-use intermediates made out-of-place (:func:`functionalize_single_use`), then the
graph is wrapped as the program as it is (:func:`program_from_graph`): no ``torch.export``
re-trace and no second decomposition trace in the translation
(``rlexport.export.onnx.translatable_as_is``). A declared dim the forward fixes to one size is
refused by name (:func:`check_dims_kept`); every artifact is then verified at other sizes. A
graph that still holds an in-place op another value observes, or a higher-order op
(``torch.cond``), is no program as it is: it takes the ``torch.export`` path below, which
functionalizes them.

The ``torch.export`` path goes through the one :func:`positional_adapter` (inputs positional, in
input-name order) and the one dynamic-shapes declaration (:func:`torch_dynamic_shapes`: one
``torch.export.Dim`` per label, retried with ``Dim.DYNAMIC`` when a guard on a dim fails the
export).
"""

from __future__ import annotations

import contextlib
import operator
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
                   indices: Sequence[int] | None = None, what: str | None = None,
                   decompositions: Mapping[Any, Callable] | None = None) -> torch.export.ExportedProgram:
    """The program of ``module`` called with keyword inputs (placeholders carry the names; its
    parameters and buffers are the program's, under their ``module.<name>`` names).

    Without ``decompositions``: ``torch.export`` (``.pt2``, AOTInductor, TorchScript's input).
    With the ONNX exporter's table: one decomposing trace of the module made functional
    (``torch.func.functional_call``), which the ONNX translation takes as it is; a forward whose
    graph still holds an in-place op or a higher-order op (``torch.cond``) is ``torch.export``-ed
    instead, which functionalizes them."""
    adapter = positional_adapter(module, input_names, indices)
    what = what or type(module).__name__
    if not decompositions:
        return export_adapter(adapter, args, dims, what)
    parameters = {n: p.detach() for n, p in adapter.named_parameters()}
    buffers = {n: b.detach() for n, b in adapter.named_buffers()}
    names = [*parameters, *buffers]

    def flat_fn(*flat):
        return torch.func.functional_call(adapter, dict(zip(names, flat[:len(names)])), tuple(flat[len(names):]))

    fake_args = symbolic_inputs(input_names, args, dims, [*parameters.values(), *buffers.values()])
    gm = _trace(flat_fn, fake_args, what, decompositions, keep_composite=True)
    if not _prepare_as_is(gm):
        return export_adapter(adapter, args, dims, what)
    check_dims_kept(gm, input_names, dims, len(names), what)
    return _program(gm, parameters, buffers, input_names, what)


def capture_function(fn: Callable[..., tuple[torch.Tensor, ...]], input_names: Sequence[str],
                     args: Sequence[torch.Tensor], dims: DynamicDims, what: str,
                     decompositions: Mapping[Any, Callable] | None = None) -> torch.export.ExportedProgram:
    """The ``ExportedProgram`` of ``fn`` from ONE ``make_fx`` trace (autograd recorded into the
    graph), taking ``args`` positionally in ``input_names`` order.

    ``decompositions``: an ATen decomposition table applied while tracing (in-place overloads are
    left out of it: :func:`functionalize_single_use` handles those). With one, the trace runs over
    fake inputs whose declared dims (``dims``) are one symbol per label and every other dim static
    (:func:`symbolic_inputs`), and the graph becomes the program as it is
    (:func:`program_from_graph`): no ``torch.export`` re-trace. Without one (a ``.pt2``/AOTInductor
    train step), or when the graph still holds an in-place op or a higher-order op after
    :func:`functionalize_single_use`, ``torch.export`` re-traces the graph with the declared dims."""
    if not decompositions:
        gm = _trace(fn, args, what)
    else:
        gm = _trace(fn, symbolic_inputs(input_names, args, dims), what, decompositions)
        if _prepare_as_is(gm):
            check_dims_kept(gm, input_names, dims, 0, what)
            return _program(gm, {}, {}, input_names, what)
    dedupe_cond_operands(gm)
    return export_adapter(positional_adapter(gm, input_names, keywords=False), args, dims, what)


def _trace(fn: Callable, args: Sequence[torch.Tensor], what: str, decompositions: Mapping[Any, Callable] | None = None,
           keep_composite: bool = False) -> torch.fx.GraphModule:
    """``make_fx(fn, symbolic)(*args)``, decomposing by ``decompositions`` (its in-place overloads
    left out) and, with ``keep_composite``, keeping the composite ops it does not decompose whole
    (:func:`keep_composite_ops`; only for a ``fn`` without autograd inside: it disables their
    autograd formulas while tracing). A failure is an ``ExportError`` naming ``what``."""
    table = None
    if decompositions:
        table = {op: fn_ for op, fn_ in decompositions.items()
                 if not (isinstance(op, torch._ops.OpOverload) and op._schema.is_mutable)}
    try:
        with fx_config.patch(use_duck_shape=False), quiet():
            with keep_composite_ops(table) if keep_composite else contextlib.nullcontext(table) as python_table:
                return make_fx(fn, decomposition_table=python_table, tracing_mode="symbolic",
                               _allow_non_fake_inputs=True)(*args)
    except Exception as err:  # noqa: BLE001
        raise ExportError(f"tracing {what} failed: {type(err).__name__}: {str(err).strip()[:2000]}") from err


def _prepare_as_is(gm: torch.fx.GraphModule) -> bool:
    """Rewrite what the one-trace program cannot hold (:func:`functionalize_single_use`,
    :func:`expand_sym_numel`); whether ``gm`` is then functional and flat - no in-place op and no
    higher-order op in any of its graphs - so that it is a program as it is."""
    functionalize_single_use(gm)
    expand_sym_numel(gm)
    for sub in gm.modules():
        if not isinstance(sub, torch.fx.GraphModule):
            return False
        for node in sub.graph.nodes:
            target = node.target
            if node.op != "call_function":
                continue
            if isinstance(target, torch._ops.HigherOrderOperator):
                return False
            if isinstance(target, torch._ops.OpOverload) and target._schema.is_mutable:
                return False
    return True


def _program(gm: torch.fx.GraphModule, parameters: Mapping[str, torch.Tensor], buffers: Mapping[str, torch.Tensor],
             input_names: Sequence[str], what: str) -> torch.export.ExportedProgram:
    try:
        return program_from_graph(gm, parameters, buffers, input_names)
    except Exception as err:  # noqa: BLE001
        raise ExportError(f"the traced graph of {what} is not a valid program: {type(err).__name__}: "
                          f"{str(err).strip()[:2000]}") from err


@contextlib.contextmanager
def keep_composite_ops(table: Mapping[Any, Callable]):
    """While tracing, the composite ATen ops ``table`` does not decompose (e.g. ``aten.linear``,
    which torchlib translates as one ``MatMul`` + ``Add`` where its decomposition is a transpose,
    reshapes and a ``Gemm``) stay single calls, as in ``ExportedProgram.run_decompositions(table)``
    (the ONNX exporter's own pass); yields the rest of ``table`` for ``make_fx``."""
    # lazy: torch.export internals, as run_decompositions uses them
    from torch.export.exported_program import (_override_composite_implicit_decomp,
                                               _split_decomp_table_to_cia_and_python_decomp)

    composite, python_table = _split_decomp_table_to_cia_and_python_decomp(dict(table))
    with _override_composite_implicit_decomp(composite):
        yield python_table


def symbolic_inputs(input_names: Sequence[str], args: Sequence[torch.Tensor], dims: DynamicDims,
                    static: Sequence[torch.Tensor] = ()) -> list[torch.Tensor]:
    """Fake tensors (one fake mode with a shape environment) shaped like ``static`` (every dim
    static) then like ``args``: the dims ``dims`` declares are one symbolic size per label
    (``batch``, ``time``), shared by every input that carries the label; the others static."""
    from torch._dynamo.source import ConstantSource  # lazy: torch._dynamo is seconds to import
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import DimDynamic, ShapeEnv

    shape_env = ShapeEnv(duck_shape=False)
    mode = FakeTensorMode(shape_env=shape_env, allow_non_fake_inputs=True)
    symbols: dict[str, torch.SymInt] = {}
    for name, t in zip(input_names, args):
        for d, label in dims.get(name, {}).items():
            if label not in symbols:
                source = ConstantSource(label)
                symbol = shape_env.create_symbol(int(t.shape[d]), source, dynamic_dim=DimDynamic.DYNAMIC)
                symbols[label] = shape_env.create_symintnode(symbol, hint=int(t.shape[d]), source=source)

    def fake(t: torch.Tensor, spec: Mapping[int, str]) -> torch.Tensor:
        sizes = [symbols[spec[d]] if d in spec else int(n) for d, n in enumerate(t.shape)]
        strides, step = [], 1
        for n in reversed(sizes):
            strides.insert(0, step)
            step = step * n
        with mode:
            return torch.empty_strided(sizes, strides, dtype=t.dtype, device=t.device, requires_grad=False)

    return [fake(t, {}) for t in static] + [fake(t, dims.get(n, {})) for n, t in zip(input_names, args)]


def check_dims_kept(gm: torch.fx.GraphModule, input_names: Sequence[str], dims: DynamicDims, skip: int, what: str) -> None:
    """Raise ``ExportError`` when the traced graph fixed a declared dynamic dim to one size (code
    that only works at the example's size): the dim, its label and the size."""
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"][skip:]
    for name, node in zip(input_names, placeholders):
        val = node.meta.get("val")
        if not isinstance(val, torch.Tensor):
            continue
        for d, label in dims.get(name, {}).items():
            size = val.shape[d]
            if isinstance(size, torch.SymInt):
                expr = size.node.shape_env.replace(size.node.expr)
                if not expr.is_number:
                    continue
                size = int(expr)
            raise ExportError(f"{what}: the graph works only at {label}={size} (input {name!r} dim {d}): "
                              f"code in its forward fixes that size; declare that dim static or make the code size-independent")


def program_from_graph(gm: torch.fx.GraphModule, parameters: Mapping[str, torch.Tensor],
                       buffers: Mapping[str, torch.Tensor], input_names: Sequence[str]) -> torch.export.ExportedProgram:
    """``gm`` (a ``make_fx`` graph: placeholders for ``parameters``, ``buffers`` then the user
    inputs; tensor constants as ``get_attr``) as an ``ExportedProgram``: constants lifted to
    placeholders between the buffers and the user inputs, the signature of those kinds."""
    from torch.export.graph_signature import (ExportGraphSignature, InputKind, InputSpec, OutputKind, OutputSpec,
                                              TensorArgument)

    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    n_lifted = len(parameters) + len(buffers)
    if len(placeholders) != n_lifted + len(input_names):
        raise ExportError(f"the traced graph has {len(placeholders)} inputs, expected {n_lifted + len(input_names)}")
    fake_mode = next((n.meta["val"].fake_mode for n in placeholders if isinstance(n.meta.get("val"), torch.Tensor)), None)
    constants: dict[str, torch.Tensor] = {}
    first_user = placeholders[n_lifted] if input_names else None
    lifted_constants = []
    by_target: dict[str, torch.fx.Node] = {}
    for node in list(gm.graph.nodes):
        if node.op != "get_attr" or not isinstance(getattr(gm, node.target, None), torch.Tensor):
            continue
        ph = by_target.get(node.target)
        if ph is None:
            value = getattr(gm, node.target)
            name = f"c_{node.target}"
            anchor = first_user if first_user is not None else next(n for n in gm.graph.nodes if n.op != "placeholder")
            with gm.graph.inserting_before(anchor):
                ph = gm.graph.placeholder(name)
            ph.meta["val"] = fake_mode.from_tensor(value, static_shapes=True) if fake_mode is not None else value
            constants[name] = value
            lifted_constants.append(ph)
            by_target[node.target] = ph
        node.replace_all_uses_with(ph)
        gm.graph.erase_node(node)
    for target in by_target:
        delattr(gm, target)
    gm.graph.lint()
    gm.recompile()
    specs = [InputSpec(InputKind.PARAMETER, TensorArgument(ph.name), target=n)
             for ph, n in zip(placeholders, parameters)]
    specs += [InputSpec(InputKind.BUFFER, TensorArgument(ph.name), target=n, persistent=True)
              for ph, n in zip(placeholders[len(parameters):n_lifted], buffers)]
    specs += [InputSpec(InputKind.CONSTANT_TENSOR, TensorArgument(ph.name), target=ph.name) for ph in lifted_constants]
    specs += [InputSpec(InputKind.USER_INPUT, TensorArgument(ph.name), target=None) for ph in placeholders[n_lifted:]]
    output = next(n for n in gm.graph.nodes if n.op == "output")
    outs = []
    results = output.args[0] if isinstance(output.args[0], (list, tuple)) else (output.args[0],)
    for arg in results:
        if not isinstance(arg, torch.fx.Node):
            raise ExportError(f"the traced graph returns a non-tensor output {arg!r}")
        outs.append(OutputSpec(OutputKind.USER_OUTPUT, TensorArgument(arg.name), target=None))
    signature = ExportGraphSignature(input_specs=specs, output_specs=outs)
    state = {**{n: nn.Parameter(t.detach(), requires_grad=False) for n, t in parameters.items()},
             **{n: t.detach() for n, t in buffers.items()}}
    return torch.export.ExportedProgram(root=gm, graph=gm.graph, graph_signature=signature, state_dict=state,
                                        range_constraints={}, module_call_graph=[], constants=constants)


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


def expand_sym_numel(gm: torch.fx.GraphModule) -> int:
    """Rewrite ``aten.sym_numel(x)`` (a mean's divisor, which torchlib has no function for) as
    the product of ``x``'s static sizes and its ``aten.sym_size.int(x, d)`` symbolic ones, what
    ``torch.export`` records for it. Returns the number of nodes rewritten."""
    count = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target is not torch.ops.aten.sym_numel.default:
            continue
        x = node.args[0]
        shape = x.meta["val"].shape
        static = 1
        product = None
        with gm.graph.inserting_before(node):
            for d, size in enumerate(shape):
                if not isinstance(size, torch.SymInt):
                    static *= int(size)
                    continue
                dim = gm.graph.call_function(torch.ops.aten.sym_size.int, (x, d))
                dim.meta["val"] = size
                if product is None:
                    product = dim
                else:
                    value = product.meta["val"] * size
                    product = gm.graph.call_function(operator.mul, (product, dim))
                    product.meta["val"] = value
            if product is None:
                replacement = static
            elif static != 1:
                value = product.meta["val"] * static
                replacement = gm.graph.call_function(operator.mul, (product, static))
                replacement.meta["val"] = value
            else:
                replacement = product
        node.replace_all_uses_with(replacement)
        gm.graph.erase_node(node)
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
