"""Gradient graphs: loss values and parameter gradients of a keyword-forward loss, in one ONNX graph.

The loss is any ``nn.Module`` called as ``loss(**batch)`` that returns a tensor or a tuple of
tensors named by ``loss.out_keys`` (or the ``out_keys`` argument). The total loss is the sum of
the outputs whose name starts with ``loss_`` (TorchRL's convention); gradients are those of the
total w.r.t. every trainable parameter. Whatever the loss does to its own parameters (e.g.
``separate_losses=True`` detaching shared parameters in the critic loss) is part of its forward
and therefore part of the graph.

How the graph is made (the route that works in torch 2.13, see the export probes): the loss is
made functional with ``torch.func.functional_call`` over a ``{name: tensor}`` dict of parameters
and buffers; ``torch.autograd.grad`` on fresh leaves differentiates it inside ``make_fx(...,
tracing_mode="symbolic")`` (``rlexport.export.capture.capture_function``), so the backward ops are
recorded into the graph (the one trace, dynamic batch, and time
when the batch has a time axis), ONNX conversion, the golden sample by the one golden-case rule
(``rlexport.export.plan.golden_inputs``: batch 1 and other horizons included), the one writer.
Parameters and buffers are graph *inputs*, never baked constants.

Graph names (``rlexport.artifact.naming``, one scheme for gradient and train-step graphs):

- inputs ``param.<name>`` (trainable parameters, ``loss.named_parameters()`` names),
  ``buffer.<name>`` (buffers and frozen parameters), then the batch keywords as given;
- outputs: the loss's ``out_keys`` (e.g. ``loss_objective``), then ``grad.<name>`` per parameter.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from rlexport.artifact.dtypes import parse_dtype
from rlexport.artifact.metadata import artifact_metadata, tensor_spec
from rlexport.artifact.naming import BUFFER_PREFIX, GRAD_PREFIX, NAMING, PARAM_PREFIX, check_unique
from rlexport.artifact.paths import check_output_path
from rlexport.artifact.tolerance import tolerances
from rlexport.export.capture import capture_function
from rlexport.export.onnx import onnx_decompositions, opset_of, save_onnx, to_onnx
from rlexport.export.plan import GoldenSpec, golden_inputs, infer_output_dims, plan_dims, reference_cases
from rlexport.export.write import write_artifact
from rlexport.inputs import check_tensor, flatten_key

Tensor = torch.Tensor

#: The float dtypes of gradient and train-step graphs.
GRAPH_DTYPES = ("float32", "float64")


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
        ``torch.func.grad`` it would need dynamo.
        """
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

    def graph_inputs(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The gradient graph's inputs by name: ``param.*``, ``buffer.*``, then ``batch``."""
        out = {PARAM_PREFIX + k: v for k, v in self.params.items()}
        out.update({BUFFER_PREFIX + k: v for k, v in self.buffers.items()})
        out.update(batch)
        return out

    def graph_outputs(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Gradient-graph inputs by name -> its outputs (loss ``out_keys``, ``grad.*``), eager
        autograd on this loss, the floating inputs cast to its dtype first."""
        to = next((t.dtype for t in (*self.params.values(), *self.batch.values()) if t.dtype.is_floating_point), None)
        x = {k: (v.to(to) if to is not None and v.dtype.is_floating_point else v) for k, v in inputs.items()}
        params = {k: x[PARAM_PREFIX + k] for k in self.params}
        buffers = {k: x[BUFFER_PREFIX + k] for k in self.buffers}
        grads, outs = self.grad_and_outputs(params, buffers, {k: x[k] for k in self.batch})
        out = {k: v.detach() for k, v in zip(self.out_keys, outs)}
        out.update({GRAD_PREFIX + k: grads[k].detach() for k in self.params})
        return out


def _out_keys(loss: nn.Module, out_keys: Sequence[str] | None) -> tuple[str, ...]:
    if out_keys is not None:
        return tuple(out_keys)
    keys = getattr(loss, "out_keys", None)
    if keys is None:
        raise TypeError(
            f"{type(loss).__name__} has no 'out_keys'; pass out_keys=[...] naming its outputs in order"
        )
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
    makes the batch axis (and a time axis) dynamic by the rule every export uses
    (``rlexport.export.plan.plan_dims``; ``batch_dims=n``: the first ``n`` axes). Also writes
    ``X.json`` (metadata; also ``rlexport.*`` ONNX metadata_props) and, with ``golden``,
    ``X.golden/`` (kind ``"grad"``: float64 eager autograd at the golden cases — the example, a
    larger batch, batch 1 and other horizons — cast to ``dtype``), which ``verify`` checks the
    graph against in ONNX Runtime before anything is written. Returns the metadata.
    """
    check_output_path(path)
    tdtype = parse_dtype(dtype, GRAPH_DTYPES)
    fl = functional_loss(loss, example, out_keys=out_keys, dtype=tdtype, owner="export_grad")
    pnames, bnames, xnames = list(fl.params), list(fl.buffers), list(fl.batch)
    input_names = [PARAM_PREFIX + n for n in pnames] + [BUFFER_PREFIX + n for n in bnames] + xnames
    output_names = list(fl.out_keys) + [GRAD_PREFIX + n for n in pnames]
    check_unique(input_names + output_names, "export_grad")
    dims = plan_dims(fl.module, fl.batch, dynamic, batch_dims, owner="export_grad")
    what = f"the gradient graph of {type(fl.module).__name__}"

    def flat_fn(*flat):
        graph_inputs = dict(zip(input_names, flat))
        out = fl.graph_outputs(graph_inputs)
        return tuple(out[n] for n in output_names)

    example_inputs = fl.graph_inputs(fl.batch)
    example_flat = [example_inputs[n] for n in input_names]
    ep = capture_function(flat_fn, input_names, example_flat, dims, what, decompositions=onnx_decompositions(opset))
    model = to_onnx(ep, input_names, output_names, dims, opset=opset, what=what)
    example_out = flat_fn(*example_flat)
    out_dims = infer_output_dims(fl.batch, dims, example_out, output_names)
    fdtype = float_dtype(fl)
    rtol, atol = tolerances(fdtype)
    inputs = {PARAM_PREFIX + n: tensor_spec(fl.params[n], role="param", module_name=n) for n in pnames}
    inputs.update({BUFFER_PREFIX + n: tensor_spec(fl.buffers[n], role="buffer", module_name=n) for n in bnames})
    inputs.update({n: tensor_spec(fl.batch[n], dims.get(n), role="batch") for n in xnames})
    outputs = {}
    for name, t in zip(output_names, example_out):
        if name.startswith(GRAD_PREFIX) and name not in fl.out_keys:
            outputs[name] = tensor_spec(t, out_dims.get(name), role="grad", param=PARAM_PREFIX + name[len(GRAD_PREFIX):])
        else:
            outputs[name] = tensor_spec(t, out_dims.get(name), role="loss" if name in fl.loss_keys else "loss_aux")
    metadata = artifact_metadata(
        "onnx", "grad", fl.module, fdtype, inputs, outputs, dims, rtol, atol,
        opset=opset_of(model), naming=NAMING, loss_out_keys=list(fl.out_keys), loss_keys=list(fl.loss_keys),
        total_loss=" + ".join(fl.loss_keys),
    )
    spec = grad_golden(fl, dims, rtol, atol) if golden else None
    meta = dict(metadata)
    write_artifact(path, meta, lambda p: save_onnx(model, meta, p, keys=None), spec, verify=verify and golden)
    metadata["artifact"] = os.path.basename(os.fspath(path))
    return metadata


def grad_golden(fl: FunctionalLoss, dims, rtol: float, atol: float) -> GoldenSpec:
    """Golden sample of a gradient graph: float64 eager autograd at the golden cases (the one
    rule, ``golden_inputs``), with conditioning-aware tolerances below float64."""
    fl64 = functional_loss(fl.module, fl.batch, out_keys=fl.out_keys, dtype=torch.float64,
                           frozen_unused=False, owner="export_grad")
    cases = [(name, fl.graph_inputs(batch)) for name, batch in golden_inputs(fl.batch, dims)]
    out, tols, extra = reference_cases(cases, fl64.graph_outputs, fl.graph_outputs, float_dtype(fl))
    return GoldenSpec("grad", out, rtol, atol, tols, extra=extra)


def float_dtype(fl: FunctionalLoss) -> torch.dtype:
    for t in (*fl.params.values(), *fl.batch.values()):
        if t.dtype.is_floating_point:
            return t.dtype
    return torch.float32
