"""Whole update steps as one ONNX graph (or, with ``format="aoti"``, one AOTInductor package of
the same captured program): loss, gradients, ``clip_grad_norm_`` and an optimizer step.

``export_train_step(loss, example, path, optimizer="adam")`` writes a graph that computes, from
the current parameters, optimizer state, hyper-parameters and a batch:

1. the loss outputs (``loss.out_keys``) and the gradient of the total loss (sum of the
   ``loss_*`` outputs) w.r.t. every trainable parameter (``torch.func`` in the trace);
2. ``torch.nn.utils.clip_grad_norm_(params, hp.max_grad_norm)`` (``inf`` disables it; the
   pre-clip total norm is the output ``grad_norm``; Adam/AdamW take it over the one flat
   gradient vector, ``rlexport.optim.clipped_step``);
3. one ``torch.optim.Adam`` / ``AdamW`` / ``SGD`` step (``rlexport.optim``).

Graph signature (``rlexport.artifact.naming``; every name is also a key of the golden sample and of ``X.json``):

- inputs, in order: ``param.<name>`` for each trainable parameter (``loss.named_parameters()``
  order and names); optimizer state ``<opt>.<slot>.<name>`` (Adam/AdamW: ``exp_avg``,
  ``exp_avg_sq``; SGD: ``momentum_buffer``) then ``<opt>.step`` (float64 0-d; the number of
  steps taken); hyper-parameters ``hp.<name>`` (float64 0-d; ``hp.nesterov`` bool): Adam/AdamW
  ``lr, beta1, beta2, eps, weight_decay, max_grad_norm``, SGD ``lr, momentum, dampening,
  weight_decay, nesterov, max_grad_norm``; then the batch keywords (dynamic batch axis, and time
  axis when the batch has one). A loss input ``k`` whose next value the loss returns as ``k_next``
  (KL-PPO's ``beta``/``beta_next``) is loss state: an input fed back like the optimizer state.
- outputs, in order: ``new.<input name>`` for each parameter and optimizer-state input (the
  updated values), then the loss's ``out_keys``, then ``grad_norm``.
- Buffers and frozen parameters of the loss are constants baked into the graph.

``state`` (in ``X.json`` and in the golden sample) maps each state input to the output that feeds
it at the next step: ``param.X -> new.param.X``, ``adam.step -> new.adam.step``, ``beta ->
beta_next``. The golden sample (kind ``"train_step"``) holds the initial state and K successive
steps whose batches follow the one golden-case rule (``rlexport.export.plan.golden_inputs``: the
example, a larger batch, batch 1 at another horizon, ...) and a changing learning rate;
reference outputs come from eager ``torch.optim`` in float64, cast to the artifact's dtype. The
graph, ``X.json`` and the golden sample are the whole artifact: nothing is pickled.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from rlexport import optim as fopt
from rlexport.artifact.dtypes import parse_dtype
from rlexport.artifact.metadata import artifact_metadata, tensor_spec
from rlexport.artifact.naming import (
    GRAD_NORM,
    HP_PREFIX,
    NAMING,
    NEW_PREFIX,
    PARAM_PREFIX,
    TrainStepLayout,
    check_unique,
    detect_loss_state,
    split_hyperparams,
)
from rlexport.artifact.paths import check_output_path
from rlexport.artifact.tolerance import (
    TRAIN_JITTER_DRAWS,
    conditioning_errors,
    is_low_precision,
    merge_errors,
    output_tolerance,
    tolerance_rule,
    tolerances,
)
from rlexport.export.aoti import compile_package
from rlexport.export.capture import capture_function
from rlexport.export.grad import GRAPH_DTYPES, FunctionalLoss, float_dtype, functional_loss
from rlexport.export.onnx import onnx_decompositions, opset_of, save_onnx, to_onnx
from rlexport.export.plan import GoldenSpec, golden_inputs, infer_output_dims, plan_dims
from rlexport.export.write import write_artifact

Tensor = torch.Tensor


def _add_buffer_loss_state(fl: FunctionalLoss) -> None:
    """A loss output ``k_next`` whose ``k`` is a buffer of the loss and an accepted keyword
    (KL-PPO's ``beta``) but not in the example: add ``k`` (the buffer's value) to the batch, so that
    the train step feeds ``k_next`` back instead of baking the buffer in."""
    buffers = dict(fl.module.named_buffers())
    for out in fl.out_keys:
        base = out[: -len("_next")] if out.endswith("_next") else None
        if base and base not in fl.batch and base in buffers:
            trial = {**fl.batch, base: buffers[base].detach().clone()}
            try:
                with torch.no_grad():
                    fl.module(**trial)
            except TypeError:
                continue
            fl.batch[base] = trial[base]


# --------------------------------------------------------------------------------------------
# the step function that is traced (and the same math run eagerly)


def functional_train_step(fl: FunctionalLoss, layout: TrainStepLayout, params: Mapping[str, Tensor],
                          state: Mapping[str, Tensor], hp: Mapping[str, Tensor], batch: Mapping[str, Tensor]):
    """``(new params, new state, loss outputs, grad_norm)`` — the graph's computation."""
    grads, outs = fl.grad_and_outputs(params, {}, batch)
    new_params, new_state, norm = fopt.clipped_step(layout.optimizer, params, grads, state, hp)
    return new_params, new_state, outs, norm


def _flat_step_fn(fl: FunctionalLoss, layout: TrainStepLayout):
    pn, sn, hn, bn = layout.params, layout.slots, layout.hyperparams, layout.batch
    i1, i2, i3 = len(pn), len(pn) + len(sn), len(pn) + len(sn) + len(hn)

    def flat_fn(*flat):
        params = dict(zip(pn, flat[:i1]))
        state = dict(zip(sn, flat[i1:i2]))
        hp = dict(zip(hn, flat[i2:i3]))
        batch = dict(zip(bn, flat[i3:]))
        new_params, new_state, outs, norm = functional_train_step(fl, layout, params, state, hp, batch)
        return (*(new_params[n] for n in pn), *(new_state[s] for s in sn), *outs, norm)

    return flat_fn


# --------------------------------------------------------------------------------------------
# eager torch.optim reference


def eager_train_steps(
    loss: nn.Module,
    layout: TrainStepLayout,
    initial_state: Mapping[str, Any],
    steps: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
    *,
    dtype: torch.dtype | None = None,
) -> list[dict[str, Tensor]]:
    """Run ``steps`` (``(batch, hyper-parameters)`` pairs) with eager PyTorch: ``loss(**batch)``,
    ``backward`` of the total loss, ``clip_grad_norm_``, ``torch.optim`` step.

    Starts from ``initial_state`` (graph names: ``param.*``, optimizer state, loss state) on a copy
    of ``loss`` (cast to ``dtype`` if given). Returns, per step, every graph output by name.
    Eager modules compute the graph's ops, so this is the graph's computation in torch.optim.
    """
    return _eager_train_steps(loss, layout, initial_state, steps, dtype=dtype)


def _eager_train_steps(loss, layout, initial_state, steps, *, dtype):
    model = copy.deepcopy(loss)
    if dtype is not None:
        model = model.to(dtype)
    named = dict(model.named_parameters())
    params = {n: named[n] for n in layout.params}

    def as_t(v, like_dtype=None):
        t = torch.as_tensor(np.asarray(v)) if not isinstance(v, Tensor) else v.detach().clone()
        if dtype is not None and t.dtype.is_floating_point and like_dtype is None:
            t = t.to(dtype)
        return t

    with torch.no_grad():
        for n, p in params.items():
            p.copy_(as_t(initial_state[PARAM_PREFIX + n]).to(p.dtype))
    fstate = {s: as_t(initial_state[layout.state_input(s)]) for s in layout.slots}
    fstate["step"] = fstate["step"].to(torch.float64)
    hp0 = split_hyperparams(layout, steps[0][1] if steps else None)
    opt = fopt.make_torch_optimizer(layout.optimizer, list(params.values()), hp0)
    fopt.state_to_torch(layout.optimizer, opt, params, fstate)
    loss_state = {k: as_t(initial_state[k]) for k in layout.loss_state}
    sgd_step = float(fstate["step"])
    results = []
    for batch, hp in steps:
        hpt = split_hyperparams(layout, hp)
        fopt.set_torch_hyperparams(opt, layout.optimizer, hpt)
        b = {k: as_t(v) for k, v in batch.items()}
        b.update(loss_state)
        opt.zero_grad(set_to_none=True)
        outs = model(**b)
        outs = tuple(outs) if isinstance(outs, (tuple, list)) else (outs,)
        total = sum(o for k, o in zip(layout.out_keys, outs) if k.startswith("loss_"))
        total.backward()
        norm = torch.nn.utils.clip_grad_norm_(list(params.values()), float(hpt["max_grad_norm"]))
        opt.step()
        sgd_step += 1
        rec: dict[str, Tensor] = {}
        for n, p in params.items():
            rec[NEW_PREFIX + PARAM_PREFIX + n] = p.detach().clone()
        st = fopt.state_from_torch(layout.optimizer, opt, params)
        if layout.optimizer == "sgd":
            st["step"] = torch.tensor(sgd_step, dtype=torch.float64)
            if float(hpt["momentum"]) == 0:
                st.update({k: torch.zeros_like(v) for k, v in st.items() if k != "step"})
        for s in layout.slots:
            rec[NEW_PREFIX + layout.state_input(s)] = st[s]
        for k, o in zip(layout.out_keys, outs):
            rec[k] = o.detach().clone()
        rec[GRAD_NORM] = norm.detach().clone()
        for k, out in layout.loss_state.items():
            loss_state[k] = rec[out]
        results.append(rec)
    return results


# --------------------------------------------------------------------------------------------
# export


def export_train_step(
    loss: nn.Module,
    example: Mapping[str, Tensor],
    path: str | os.PathLike,
    optimizer: str = "adam",
    *,
    hyperparams: Mapping[str, Any] | None = None,
    dynamic: bool | Mapping[str, Mapping[int, str]] = True,
    dtype: torch.dtype | str | None = None,
    batch_dims: int | None = None,
    out_keys: Sequence[str] | None = None,
    loss_state: Mapping[str, str] | None = None,
    opset: int | None = None,
    golden: bool = True,
    golden_steps: int = 3,
    verify: bool = True,
    format: str = "onnx",
    inductor_configs: Mapping | None = None,
) -> dict[str, Any]:
    """Write the whole update step of ``loss`` with ``optimizer`` (``"adam"``, ``"adamw"``,
    ``"sgd"``) as the ONNX graph ``path``; see the module docstring for the signature.
    ``format="aoti"`` compiles the same captured program into an AOTInductor package instead
    (``X.pt2``, loadable from C++ with ``torch::inductor::AOTIModelPackageLoader``; same inputs,
    outputs, ``X.json`` and golden sample, verified by running the package).

    ``hyperparams`` (``lr``, ``betas`` or ``beta1``/``beta2``, ``eps``, ``weight_decay``,
    ``momentum``, ``dampening``, ``nesterov``, ``max_grad_norm``) are the defaults recorded in
    the metadata and used by the golden sample and :class:`~rlexport.runtime.trainer.OnnxTrainer`;
    they stay graph inputs. ``dtype`` casts a copy of the loss and the example. ``loss_state``
    overrides the detected ``{input: output}`` loss-state pairs. Writes ``X.onnx``, ``X.json`` and
    ``X.golden/`` (at least ``golden_steps`` steps, one per golden case of the one rule, checked
    in ONNX Runtime before anything is written when ``verify``). Returns the metadata.
    """
    check_output_path(path)
    optimizer = optimizer.lower() if isinstance(optimizer, str) else optimizer
    if format not in ("onnx", "aoti"):
        raise ValueError(f"export_train_step: format={format!r} is not supported; choose 'onnx' or 'aoti'")
    if optimizer not in fopt.OPTIMIZERS:
        raise ValueError(f"export_train_step: optimizer={optimizer!r} is not supported; choose one of {list(fopt.OPTIMIZERS)}")
    fl = functional_loss(loss, example, out_keys=out_keys, dtype=parse_dtype(dtype, GRAPH_DTYPES), owner="export_train_step")
    if not fl.params:
        raise ValueError("export_train_step: the loss has no trainable parameter that receives a gradient")
    if loss_state is None:
        _add_buffer_loss_state(fl)
        lstate = detect_loss_state(list(fl.batch), fl.out_keys)
    else:
        lstate = dict(loss_state)
    for k, o in lstate.items():
        if k not in fl.batch or o not in fl.out_keys:
            raise ValueError(f"export_train_step: loss_state {k!r} -> {o!r} must map a batch input to a loss output")
    layout = TrainStepLayout(optimizer, list(fl.params), list(fl.batch), list(fl.out_keys), lstate)
    hp = split_hyperparams(layout, hyperparams)
    init = fopt.init_state(optimizer, fl.params)
    check_unique(layout.input_names + layout.output_names, "export_train_step")
    plain = {k: v for k, v in fl.batch.items() if k not in lstate}
    axes = plan_dims(fl.module, plain, dynamic, batch_dims, owner="export_train_step")
    what = f"the train step of {type(fl.module).__name__}"

    flat_fn = _flat_step_fn(fl, layout)
    example_flat = [*fl.params.values(), *(init[s] for s in layout.slots), *(hp[h] for h in layout.hyperparams),
                    *fl.batch.values()]
    ep = capture_function(flat_fn, layout.input_names, example_flat, axes, what,
                          decompositions=onnx_decompositions(opset) if format == "onnx" else None)
    model = to_onnx(ep, layout.input_names, layout.output_names, axes, opset=opset, what=what) if format == "onnx" else None
    example_out = flat_fn(*example_flat)
    out_axes = infer_output_dims(plain, axes, example_out, layout.output_names)
    fdtype = float_dtype(fl)
    rtol, atol = tolerances(fdtype)

    roles = {}
    for n in layout.params:
        roles[PARAM_PREFIX + n] = ("param", {"module_name": n})
    for s in layout.slots:
        roles[layout.state_input(s)] = ("optimizer_state", {"slot": s.split(".", 1)[0], **(
            {"param": PARAM_PREFIX + s.split(".", 1)[1]} if "." in s else {})})
    for h in layout.hyperparams:
        roles[HP_PREFIX + h] = ("hyperparam", {"default": _py(hp[h])})
    for b in layout.batch:
        roles[b] = ("loss_state" if b in lstate else "batch", {})
    inputs = {n: tensor_spec(t, axes.get(n), role=roles[n][0], **roles[n][1]) for n, t in zip(layout.input_names, example_flat)}
    outputs = {}
    state_out = {o: i for i, o in layout.state.items()}
    for name, t in zip(layout.output_names, example_out):
        if name in state_out and name.startswith(NEW_PREFIX):
            role = "new_param" if state_out[name].startswith(PARAM_PREFIX) else "new_optimizer_state"
            outputs[name] = tensor_spec(t, out_axes.get(name), role=role, state_of=state_out[name])
        elif name == GRAD_NORM:
            outputs[name] = tensor_spec(t, out_axes.get(name), role="grad_norm")
        else:
            role = "loss" if name in fl.loss_keys else "loss_aux"
            extra = {"state_of": state_out[name]} if name in state_out else {}
            outputs[name] = tensor_spec(t, out_axes.get(name), role=role, **extra)
    metadata = artifact_metadata(
        format, "train_step", fl.module, fdtype, inputs, outputs, axes, rtol, atol,
        **({"opset": opset_of(model)} if format == "onnx" else {"device": "cpu"}), naming=NAMING, optimizer=optimizer,
        hyperparams={HP_PREFIX + h: _py(hp[h]) for h in layout.hyperparams},
        state=layout.state,
        step_inputs=layout.step_inputs,
        loss_out_keys=list(fl.out_keys),
        loss_keys=list(fl.loss_keys),
        total_loss=" + ".join(fl.loss_keys),
        clip="torch.nn.utils.clip_grad_norm_(params, hp.max_grad_norm), norm_type=2; grad_norm is the pre-clip norm",
        layout=layout.to_json(),
        semantics={"adam": "torch.optim.Adam", "adamw": "torch.optim.AdamW", "sgd": "torch.optim.SGD"}[optimizer],
    )

    spec = train_step_golden(fl, layout, axes, hp, init, rtol, atol, golden_steps) if golden else None
    meta = dict(metadata)
    save = (lambda p: save_onnx(model, meta, p, keys=None)) if format == "onnx" else (lambda p: compile_package(ep, p, inductor_configs))
    write_artifact(path, meta, save, spec, verify=verify and golden)
    metadata["artifact"] = os.path.basename(os.fspath(path))
    return metadata


def _py(t: Tensor):
    v = t.item()  # eager metadata of a 0-d hyper-parameter, never in a graph
    return bool(v) if t.dtype == torch.bool else float(v)


def _golden_hyperparams(hp: Mapping[str, Tensor], k: int) -> list[dict[str, Tensor]]:
    """Step ``i`` uses ``lr * (1 - 0.25 i)`` (a schedule: the graph must take lr as an input)."""
    out = []
    for i in range(k):
        h = dict(hp)
        h["lr"] = hp["lr"] * (1 - 0.25 * (i % 4))
        out.append(h)
    return out


def train_step_golden(fl: FunctionalLoss, layout: TrainStepLayout, axes, hp, init, rtol: float, atol: float,
                      steps: int) -> GoldenSpec:
    """The golden sample of a train step: ``max(steps, number of golden cases)`` successive steps
    whose batches are the golden cases of the one rule (``golden_inputs``, cycled) and whose lr
    changes; reference from float64 eager ``torch.optim``, conditioning-aware tolerances below
    float64 (:func:`train_tolerances`)."""
    dtype = float_dtype(fl)
    plain = {b: v for b, v in fl.batch.items() if b not in layout.loss_state}
    variants = golden_inputs(plain, axes)
    k = max(int(steps), len(variants))
    named = [variants[i % len(variants)] for i in range(k)]
    batches = [b for _, b in named]
    hps = _golden_hyperparams(hp, k)
    initial = {PARAM_PREFIX + n: p for n, p in fl.params.items()}
    initial.update({layout.state_input(s): init[s] for s in layout.slots})
    initial.update({b: fl.batch[b] for b in layout.loss_state})
    ref = eager_train_steps(fl.module, layout, initial, list(zip(batches, hps)), dtype=torch.float64)
    tols = train_tolerances(fl, layout, initial, batches, hps, ref, dtype)
    floats = _float_outputs(layout)
    cases = []
    for i, ((name, batch), h, out) in enumerate(zip(named, hps, ref)):
        inputs = {HP_PREFIX + n: v for n, v in h.items()}
        inputs.update(batch)
        outputs = {n: (out[n].to(dtype) if out[n].dtype.is_floating_point and n in floats else out[n])
                   for n in layout.output_names}
        cases.append((f"step{i}_{name}", inputs, outputs))
    extra: dict[str, Any] = {"optimizer": layout.optimizer, "reference": "eager torch.optim + clip_grad_norm_, float64"}
    if tols:
        extra["tolerance_rule"] = tolerance_rule(dtype, jitter_draws=TRAIN_JITTER_DRAWS, over="the K steps of the sample (max)")
    return GoldenSpec("train_step", cases, rtol, atol, tols, state=layout.state, initial_state=initial, extra=extra)


def train_tolerances(fl, layout, initial, batches, hps, ref, dtype) -> dict[str, dict[str, float]]:
    """Conditioning-aware tolerances of a train-step golden sample below float64 (docs/design.md,
    "Golden sample format"): the K eager ``torch.optim`` steps are also run in the artifact
    ``dtype`` (``eager_train_steps``, the float64 reference's code), on the golden initial state and
    batches and on ulp-jittered copies of them (``conditioning_errors``); per float output (loss
    outputs, ``grad_norm``, new parameters and optimizer state) the largest error against the
    float64 reference over the K steps sets ``output_tolerance``. Empty for float64 (defaults)."""
    if not is_low_precision(dtype):
        return {}
    floats = _float_outputs(layout)
    # One flat mapping of what the artifact gets in its dtype (initial state, batches), which
    # conditioning_errors jitters; hyper-parameters (float64 graph inputs) are kept as they are.
    flat = {f"init/{n}": v for n, v in initial.items()}
    flat.update({f"{i}/{n}": v for i, b in enumerate(batches) for n, v in b.items()})

    def steps(x, run_dtype):
        init = {n: x[f"init/{n}"] for n in initial}
        seq = [({n: x[f"{i}/{n}"] for n in b}, h) for i, (b, h) in enumerate(zip(batches, hps))]
        with torch.enable_grad():  # conditioning_errors runs under no_grad; the steps backpropagate
            out = eager_train_steps(fl.module, layout, init, seq, dtype=run_dtype)
        return {f"{i}/{n}": t for i, rec in enumerate(out) for n, t in rec.items() if n in floats}

    reference = {f"{i}/{n}": t for i, rec in enumerate(ref) for n, t in rec.items() if n in floats}
    try:
        per_step = conditioning_errors(lambda x: steps(x, dtype), lambda: steps(flat, torch.float64), flat, reference,
                                       draws=TRAIN_JITTER_DRAWS)
    except Exception:  # noqa: BLE001 - no eager kernels in this dtype: keep the defaults
        return {}
    errors: dict[str, float | None] = {}
    for i in range(len(ref)):
        merge_errors(errors, {n: per_step[f"{i}/{n}"] for n in layout.output_names if f"{i}/{n}" in per_step})
    return {n: output_tolerance(dtype, err) for n, err in errors.items()}


def _float_outputs(layout: TrainStepLayout) -> set[str]:
    """Outputs in the artifact dtype (everything but the float64 step counter)."""
    step_out = NEW_PREFIX + layout.state_input("step")
    return {n for n in layout.output_names if n != step_out}
