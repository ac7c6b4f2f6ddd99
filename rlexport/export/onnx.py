"""ONNX conversion (``torch.onnx.export(dynamo=True)`` of a captured program) and ``export_onnx``.

The graph's input names are the keyword names (or ``param.*``/``hp.*``... for gradient and
train-step graphs), its output names the ``out_keys``; dynamic dims are named by their labels
(``batch``, ``time``) in ONNX ``dim_param``s. ``metadata_props`` carry the ``rlexport.*`` keys
of ``rlexport.artifact.metadata.ONNX_METADATA_KEYS`` (JSON values).
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

from rlexport.artifact.metadata import ONNX_METADATA_KEYS, set_onnx_metadata
from rlexport.artifact.paths import check_output_path
from rlexport.export.capture import capture_module
from rlexport.export.plan import DynamicDims, ExportError, plan_export, quiet
from rlexport.export.write import write_artifact


@functools.lru_cache(maxsize=None)
def _torchlib_registry(opset: int):
    """The exporter's ATen -> ONNX function registry for ``opset``, built once per process.

    ``torch.onnx.export`` rebuilds it on every call (it re-parses the source of every torchlib
    function: seconds per export, ``benchmarks/export_times.py``); it is read-only while a program
    is translated, so one copy serves every export of this process."""
    # lazy: torch's ONNX exporter internals take seconds to import; only exports need them
    from torch.onnx._internal.exporter import _constants, _registration

    with quiet():  # it logs a warning per torchvision op it skips; built outside an export too
        return _registration.ONNXRegistry.from_torchlib(opset_version=max(opset, _constants.TORCHLIB_OPSET))


def _resolve_opset(opset: int | None) -> int:
    from torch.onnx import _constants  # lazy, as above

    return _constants.ONNX_DEFAULT_OPSET if opset is None else opset  # what torch.onnx.export defaults to


@functools.lru_cache(maxsize=None)
def onnx_decompositions(opset: int | None = None) -> dict:
    """The ATen decomposition table the ONNX exporter applies before translating (torch's
    decompositions of every op torchlib has no ONNX function for), for ``opset``.

    ``capture_function(..., decompositions=onnx_decompositions(opset))`` applies it while tracing,
    so :func:`to_onnx` can translate the program without re-tracing it (:func:`translatable_as_is`)."""
    from torch.onnx._internal.exporter import _decomp  # lazy, as above

    registry = _torchlib_registry(_resolve_opset(opset))
    return _decomp.create_onnx_friendly_decomposition_table(set(_decomp.get_onnx_implemented_overloads(registry)))


def translatable_as_is(ep: torch.export.ExportedProgram, opset: int | None = None) -> bool:
    """Whether every call in ``ep`` (sub-graphs included) is an out-of-place ATen op (or a Python
    callable such as ``operator.getitem``) that torchlib translates directly: then the exporter's
    decomposition pass (a whole re-trace of the program with symbolic shapes) would leave the
    graph as it is, and :func:`to_onnx` skips it. Higher-order ops (``cond``, ``while_loop``) and
    in-place or unregistered ops take the exporter's full path."""
    registry = _torchlib_registry(_resolve_opset(opset))
    for gm in ep.graph_module.modules():
        if not isinstance(gm, torch.fx.GraphModule):
            return False
        for node in gm.graph.nodes:
            if node.op != "call_function":
                continue
            target = node.target
            if isinstance(target, torch._ops.OpOverload):
                if target._schema.is_mutable or not registry.is_registered(target):
                    return False
            elif isinstance(target, torch._ops.HigherOrderOperator) or not (target is operator.getitem or registry.is_registered(target)):
                return False
    return True


def _translate_decomposed(ep: torch.export.ExportedProgram, input_names, output_names, opset: int):
    """What ``torch.onnx.export`` does to an ``ExportedProgram`` after its decomposition pass:
    explicit type promotion, assertion nodes removed (both in place on ``ep``), translation with
    the cached registry, opset conversion, onnxscript's optimiser, inputs and outputs renamed."""
    # lazy, as above
    from torch.onnx._internal._lazy_import import onnxscript_apis
    from torch.onnx._internal.exporter import _core, _fx_passes, _ir_passes

    registry = _torchlib_registry(opset)
    with torch.fx.experimental._config.patch(backed_size_oblivious=True):  # as torch's own preparation
        _fx_passes.insert_type_promotion_nodes(ep.graph_module)
        ep._graph_module = _fx_passes.remove_assertion_nodes(ep.graph_module)
    program = _core._exported_program_to_onnx_program(ep, registry=registry)
    program.model = onnxscript_apis.convert_version(program.model, opset)
    program.optimize()
    _ir_passes.rename_inputs(program.model, list(input_names))
    _ir_passes.rename_outputs(program.model, list(output_names))
    return program


def _onnx_program(ep: torch.export.ExportedProgram, input_names, output_names, opset: int | None):
    """``torch.onnx.export(ep, dynamo=True, optimize=True)`` with the process's cached registry,
    without the exporter's decomposition re-trace where it would change nothing
    (:func:`translatable_as_is`).

    That is torch's own ``_core.export`` (what ``torch.onnx.export`` calls for an
    ``ExportedProgram``, after building the registry), given the cached one; where this torch
    has no such internal, ``torch.onnx.export`` itself."""
    try:  # lazy, as above
        from torch.onnx._internal.exporter import _core
    except ImportError:  # another torch layout: the public call (registry rebuilt per export)
        _core = None
    if _core is None or not hasattr(_core, "export"):
        return torch.onnx.export(ep, (), input_names=list(input_names), output_names=list(output_names),
                                 opset_version=opset, dynamo=True, optimize=True, external_data=False, verbose=False)
    opset = _resolve_opset(opset)
    if translatable_as_is(ep, opset):
        return _translate_decomposed(ep, input_names, output_names, opset)
    return _core.export(ep, registry=_torchlib_registry(opset), input_names=list(input_names),
                        output_names=list(output_names), optimize=True, opset_version=opset, verbose=False)


def to_onnx(ep: torch.export.ExportedProgram, input_names: Sequence[str], output_names: Sequence[str],
            dims: DynamicDims, *, opset: int | None = None, what: str = "the module") -> onnx.ModelProto:
    """The ``onnx.ModelProto`` of a captured program: names checked, dynamic dims named by label,
    constant ``Pow`` simplified (:func:`simplify_pow`), ``onnx.checker`` (full check) passed.
    ``ep`` may be rewritten in place (type promotion) when it is translated without the
    exporter's decomposition (:func:`translatable_as_is`)."""
    try:
        with quiet():
            program = _onnx_program(ep, input_names, output_names, opset)
    except Exception as err:  # noqa: BLE001
        raise ExportError(f"ONNX export of {what} failed: {type(err).__name__}: {str(err).strip()[:2000]}") from err
    model = program.model_proto
    inits = {i.name for i in model.graph.initializer}
    ins = [i.name for i in model.graph.input if i.name not in inits]
    outs = [o.name for o in model.graph.output]
    if outs != list(output_names) or any(n not in input_names for n in ins):
        raise ExportError(f"torch.onnx.export changed the graph signature: inputs {ins} (expected {list(input_names)}), "
                          f"outputs {outs} (expected {list(output_names)})")
    rename_dims(model, dims)
    simplify_pow(model)
    describe_model(model, what, output_names)
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as err:  # noqa: BLE001
        raise ExportError(f"the exported ONNX model fails onnx.checker (full check): {err}") from err
    return model


def describe_model(model: onnx.ModelProto, what: str, output_names: Sequence[str]) -> None:
    """The producer and doc string every rlexport ONNX model carries."""
    model.producer_name = "rlexport"
    model.doc_string = f"{what} exported by rlexport; outputs {list(output_names)}"


def save_onnx(model: onnx.ModelProto, metadata: Mapping, path: Path, keys: Sequence[str] | None = ONNX_METADATA_KEYS) -> None:
    """Save ``model`` with the ``X.json`` entries ``keys`` (``None``: all of them; gradient and
    train-step graphs carry their whole layout) as ``rlexport.*`` ``metadata_props``."""
    set_onnx_metadata(model, {k: v for k, v in metadata.items() if keys is None or k in keys})
    onnx.save_model(model, str(path))


def rename_dims(model, dims) -> None:
    """Name the ONNX ``dim_param``s by their labels (``batch``, ``time``) instead of ``s0``, ``s11``."""
    mapping: dict[str, str] = {}
    for value in model.graph.input:
        for d, dim in enumerate(value.type.tensor_type.shape.dim):
            label = dims.get(value.name, {}).get(d)
            if label is not None and dim.dim_param and dim.dim_param != label:
                mapping.setdefault(dim.dim_param, label)
    if not mapping:
        return
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, mapping)) + r")\b")
    for value in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
        if not value.type.HasField("tensor_type"):
            continue
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param:
                dim.dim_param = pattern.sub(lambda m: mapping[m.group(1)], dim.dim_param)


def opset_of(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def simplify_pow(proto) -> int:
    """Rewrite ``Pow(x, c)`` with a constant scalar ``c`` in {1, 2, 0.5} as ``Identity``,
    ``Mul(x, x)``, ``Sqrt(x)``: ONNX Runtime's Pow calls ``std::pow`` per element (several times
    slower on large batches); the results are the same (torch computes ``x**2`` as ``x*x``).
    Returns the number of nodes rewritten."""
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


def export_onnx(
    module: torch.nn.Module,
    example: Mapping[str, torch.Tensor],
    path: str | Path,
    *,
    dynamic: bool | Mapping = True,
    opset: int | None = None,
    dtype: str | torch.dtype | None = None,
    output_names: Sequence[str] | None = None,
    verify: bool = True,
) -> Path:
    """Export ``module(**example)`` to ONNX at ``path``; returns the written path.

    ``dynamic``: ``True`` (batch and time dims), ``False`` or ``{input: {dim: label}}`` (see
    ``rlexport.export.plan``). ``opset``: the default opset of the torch exporter (20) when
    None. ``dtype``: cast the module and the floating inputs first (``"float32"``/``"float64"``).
    ``output_names``: keep only these outputs (a subset of ``out_keys``, in the given order).
    Beside it: ``X.json`` and ``X.golden/``. The model is checked with ``onnx.checker`` (full)
    and, unless ``verify=False``, run in ONNX Runtime (CPU) at every golden case; on any failure
    ``ExportError`` is raised and nothing is written.
    """
    check_output_path(path)
    plan = plan_export(module, example, dynamic=dynamic, dtype=dtype, output_names=output_names)
    what = type(plan.original).__name__
    ep = capture_module(plan.module, plan.input_names, plan.args, plan.dims, plan.output_indices, what,
                        decompositions=onnx_decompositions(opset))
    model = to_onnx(ep, plan.input_names, plan.output_names, plan.dims, opset=opset, what=what)
    meta = plan.metadata("onnx", {"opset": opset_of(model), "nodes": len(model.graph.node)})
    return write_artifact(path, meta, lambda p: save_onnx(model, meta, p), plan.golden(), verify=verify)
