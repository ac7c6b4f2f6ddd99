"""Whole update steps as one ONNX graph: loss, gradients, ``clip_grad_norm_`` and an optimizer step.

``export_train_step(loss, example, path, optimizer="adam")`` writes a graph that computes, from
the current parameters, optimizer state, hyper-parameters and a batch:

1. the loss outputs (``loss.out_keys``) and the gradient of the total loss (sum of the
   ``loss_*`` outputs) w.r.t. every trainable parameter (``torch.func`` in the trace);
2. ``torch.nn.utils.clip_grad_norm_(params, hp.max_grad_norm)`` (``inf`` disables it; the
   pre-clip total norm is the output ``grad_norm``);
3. one ``torch.optim.Adam`` / ``AdamW`` / ``SGD`` step (``rlexport.export.optim``).

Graph signature (names; every name is also a key of the golden sample and of ``X.json``):

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
steps with batches of different sizes and a changing learning rate; reference outputs come from
eager ``torch.optim`` in float64, cast to the artifact's dtype.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from rlexport.export import optim as fopt
from rlexport.export.grad import (
    NEW_PREFIX,
    PARAM_PREFIX,
    FunctionalLoss,
    TracedSpec,
    _parse_dtype,
    batch_axes,
    batch_size,
    build_metadata,
    check_unique,
    exported_to_onnx,
    float_dtype,
    functional_loss,
    golden_dir,
    golden_sizes,
    io_spec,
    output_axes,
    read_metadata,
    resample_batch,
    trace_functional,
    verify_golden,
    write_artifact,
)

Tensor = torch.Tensor

HP_PREFIX = "hp."
GRAD_NORM = "grad_norm"


# --------------------------------------------------------------------------------------------
# layout: which graph name is what


@dataclass
class TrainStepLayout:
    """The names of a train-step graph and what each one is."""

    optimizer: str
    params: list[str]  # module names of the trainable parameters
    batch: list[str]  # batch keywords (loss-state inputs included, in their keyword position)
    out_keys: list[str]  # the loss's outputs
    loss_state: dict[str, str] = field(default_factory=dict)  # batch keyword -> loss output

    @property
    def slots(self) -> list[str]:
        """Functional optimizer state keys (``exp_avg.<name>``..., ``step``)."""
        return [f"{s}.{n}" for s in fopt.OPTIMIZER_SLOTS[self.optimizer] for n in self.params] + ["step"]

    @property
    def hyperparams(self) -> list[str]:
        return list(fopt.OPTIMIZER_DEFAULTS[self.optimizer])

    def param_input(self, name: str) -> str:
        return PARAM_PREFIX + name

    def state_input(self, slot: str) -> str:
        return f"{self.optimizer}.{slot}"

    @property
    def input_names(self) -> list[str]:
        return (
            [PARAM_PREFIX + n for n in self.params]
            + [self.state_input(s) for s in self.slots]
            + [HP_PREFIX + h for h in self.hyperparams]
            + list(self.batch)
        )

    @property
    def output_names(self) -> list[str]:
        return (
            [NEW_PREFIX + PARAM_PREFIX + n for n in self.params]
            + [NEW_PREFIX + self.state_input(s) for s in self.slots]
            + list(self.out_keys)
            + [GRAD_NORM]
        )

    @property
    def state(self) -> dict[str, str]:
        """State input -> the output that feeds it at the next step."""
        out = {PARAM_PREFIX + n: NEW_PREFIX + PARAM_PREFIX + n for n in self.params}
        out.update({self.state_input(s): NEW_PREFIX + self.state_input(s) for s in self.slots})
        out.update(self.loss_state)
        return out

    @property
    def step_inputs(self) -> list[str]:
        """Inputs given at every step: hyper-parameters and the batch (without loss state)."""
        return [HP_PREFIX + h for h in self.hyperparams] + [b for b in self.batch if b not in self.loss_state]

    def to_json(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer, "params": self.params, "batch": self.batch,
                "out_keys": self.out_keys, "loss_state": self.loss_state}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "TrainStepLayout":
        return cls(d["optimizer"], list(d["params"]), list(d["batch"]), list(d["out_keys"]), dict(d.get("loss_state", {})))


def detect_loss_state(batch: Sequence[str], out_keys: Sequence[str]) -> dict[str, str]:
    """Batch keywords ``k`` for which the loss returns ``k_next`` (KL-PPO's ``beta``)."""
    return {k: k + "_next" for k in batch if k + "_next" in out_keys}


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


def split_hyperparams(layout_or_optimizer, values: Mapping[str, Any] | None) -> dict[str, Tensor]:
    """Hyper-parameters by short name (``lr``) or graph name (``hp.lr``) → graph tensors,
    torch.optim defaults for the rest. ``betas=(b1, b2)`` is accepted."""
    optimizer = layout_or_optimizer.optimizer if isinstance(layout_or_optimizer, TrainStepLayout) else layout_or_optimizer
    clean = {}
    for k, v in (values or {}).items():
        k = k[len(HP_PREFIX):] if k.startswith(HP_PREFIX) else k
        clean[k] = v
    return fopt.default_hyperparams(optimizer, **clean)


# --------------------------------------------------------------------------------------------
# the step function that is traced (and the same math run eagerly)


def functional_train_step(fl: FunctionalLoss, layout: TrainStepLayout, params: Mapping[str, Tensor],
                          state: Mapping[str, Tensor], hp: Mapping[str, Tensor], batch: Mapping[str, Tensor]):
    """``(new params, new state, loss outputs, grad_norm)`` — the graph's computation."""
    grads, outs = fl.grad_and_outputs(params, {}, batch)
    names = list(params)
    clipped, norm = fopt.clip_grads([grads[n] for n in names], hp["max_grad_norm"])
    new_params, new_state = fopt.STEP_FUNCTIONS[layout.optimizer](params, dict(zip(names, clipped)), state, hp)
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
    save_module: bool = True,
) -> dict[str, Any]:
    """Write the whole update step of ``loss`` with ``optimizer`` (``"adam"``, ``"adamw"``,
    ``"sgd"``) as the ONNX graph ``path``; see the module docstring for the signature.

    ``hyperparams`` (``lr``, ``betas`` or ``beta1``/``beta2``, ``eps``, ``weight_decay``,
    ``momentum``, ``dampening``, ``nesterov``, ``max_grad_norm``) are the defaults recorded in
    the metadata and used by the golden sample and :class:`~rlexport.runtime.trainer.OnnxTrainer`;
    they stay graph inputs. ``dtype`` casts a copy of the loss and the example. ``loss_state``
    overrides the detected ``{input: output}`` loss-state pairs. Writes ``X.onnx``, ``X.json``,
    ``X.golden/`` (``golden_steps`` steps, checked in ONNX Runtime before anything is written when
    ``verify``) and, with ``save_module``, ``X.loss.pt`` (the loss, pickled, so that
    :func:`validate_train_step` can rerun eager PyTorch). Returns the metadata.
    """
    optimizer = optimizer.lower() if isinstance(optimizer, str) else optimizer
    if optimizer not in fopt.OPTIMIZERS:
        raise ValueError(f"export_train_step: optimizer={optimizer!r} is not supported; choose one of {list(fopt.OPTIMIZERS)}")
    dtype = _parse_dtype(dtype)
    fl = functional_loss(loss, example, out_keys=out_keys, dtype=dtype, owner="export_train_step")
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
    axes = batch_axes({k: v for k, v in fl.batch.items() if k not in lstate}, dynamic, batch_dims,
                      owner="export_train_step", module=fl.module)

    flat_fn = _flat_step_fn(fl, layout)
    example_flat = [*fl.params.values(), *(init[s] for s in layout.slots), *(hp[h] for h in layout.hyperparams),
                    *fl.batch.values()]
    spec = TracedSpec(layout.input_names, layout.output_names, example_flat, axes)
    ep = trace_functional(flat_fn, spec)
    proto = exported_to_onnx(ep, spec, opset=opset)
    example_out = flat_fn(*example_flat)
    out_axes = output_axes(ep, spec)
    fdtype = float_dtype(fl)
    rtol, atol = default_train_tolerances(fdtype)

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
    inputs = {n: io_spec(roles[n][0], t, axes.get(n), **roles[n][1]) for n, t in zip(layout.input_names, example_flat)}
    outputs = {}
    state_out = {o: i for i, o in layout.state.items()}
    for name, t in zip(layout.output_names, example_out):
        if name in state_out and name.startswith(NEW_PREFIX):
            role = "new_param" if state_out[name].startswith(PARAM_PREFIX) else "new_optimizer_state"
            outputs[name] = io_spec(role, t, out_axes.get(name), state_of=state_out[name])
        elif name == GRAD_NORM:
            outputs[name] = io_spec("grad_norm", t, out_axes.get(name))
        else:
            role = "loss" if name in fl.loss_keys else "loss_aux"
            extra = {"state_of": state_out[name]} if name in state_out else {}
            outputs[name] = io_spec(role, t, out_axes.get(name), **extra)
    metadata = build_metadata(
        "train_step", path, fl.module, fdtype, inputs, outputs, axes, rtol, atol,
        optimizer=optimizer,
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

    def write_golden_dir(gdir):
        _write_train_golden(fl, layout, gdir, path, axes, hp, init, rtol, atol, golden_steps)

    def after(staged):
        if golden and verify:
            verify_golden(staged, golden_dir(staged))

    write_artifact(proto, path, metadata, golden=write_golden_dir if golden else None, verify=after)
    mp = module_path(path)
    if os.path.exists(mp):
        os.remove(mp)
    if save_module:
        try:
            torch.save(fl.module, mp)
        except Exception as err:  # noqa: BLE001 - local classes and lambdas do not pickle
            warnings.warn(f"export_train_step: could not pickle the loss ({err}); "
                          "validate_train_step will need loss=", stacklevel=2)
    return metadata


def module_path(path: str | os.PathLike) -> str:
    """``X.loss.pt``: the pickled (dtype-cast) loss module beside ``X.onnx``."""
    p = os.fspath(path)
    return (p[: -len(".onnx")] if p.endswith(".onnx") else p) + ".loss.pt"


def _py(t: Tensor):
    v = t.item()
    return bool(v) if t.dtype == torch.bool else float(v)


def default_train_tolerances(dtype: torch.dtype) -> tuple[float, float]:
    """``(rtol, atol)`` of a train-step golden sample against float64 eager ``torch.optim``."""
    if dtype == torch.float64:
        return (1e-7, 1e-9)
    return (1e-4, 1e-5)


def _golden_hyperparams(hp: Mapping[str, Tensor], k: int) -> list[dict[str, Tensor]]:
    """Step ``i`` uses ``lr * (1 - 0.25 i)`` (a schedule: the graph must take lr as an input)."""
    out = []
    for i in range(k):
        h = dict(hp)
        h["lr"] = hp["lr"] * (1 - 0.25 * (i % 4))
        out.append(h)
    return out


def _write_train_golden(fl, layout, gdir, path, axes, hp, init, rtol, atol, k) -> None:
    from rlexport.export.golden import write_golden
    from rlexport.export.writer import tolerance_rule

    dtype = float_dtype(fl)
    gen = torch.Generator().manual_seed(0)
    sizes = golden_sizes(batch_size(fl.batch, axes), k) if axes else [None] * k
    plain = {b: v for b, v in fl.batch.items() if b not in layout.loss_state}
    batches = [plain if s is None else resample_batch(plain, s, gen, axes) for s in sizes]
    hps = _golden_hyperparams(hp, k)
    initial = {PARAM_PREFIX + n: p for n, p in fl.params.items()}
    initial.update({layout.state_input(s): init[s] for s in layout.slots})
    initial.update({b: fl.batch[b] for b in layout.loss_state})
    ref = eager_train_steps(fl.module, layout, initial, list(zip(batches, hps)), dtype=torch.float64)
    tols = _train_tolerances(fl, layout, initial, batches, hps, ref, dtype)
    cases = []
    for i, (size, batch, h, out) in enumerate(zip(sizes, batches, hps, ref)):
        inputs = {HP_PREFIX + n: v for n, v in h.items()}
        inputs.update(batch)
        outputs = {n: (out[n].to(dtype) if out[n].dtype.is_floating_point and n in _float_outputs(layout) else out[n])
                   for n in layout.output_names}
        cases.append((f"step{i}" + (f"_b{size}" if size else ""), inputs, outputs))
    extra = {"optimizer": layout.optimizer, "reference": "eager torch.optim + clip_grad_norm_, float64"}
    if tols:
        extra["tolerance_rule"] = {**tolerance_rule(dtype), "jitter_draws": TRAIN_JITTER_DRAWS,
                                   "over": "the K steps of the sample (max)"}
    write_golden(gdir, cases, artifact=os.path.basename(os.fspath(path)), kind="train_step", rtol=rtol, atol=atol,
                 state=layout.state, initial_state=initial, tolerances=tols, extra=extra)


#: Jittered eager runs for a train step's tolerances (forward and gradient goldens: 3,
#: ``EAGER_JITTER_DRAWS``). Adam's first step ``lr * g / (|g| + eps)`` is ``±lr`` for every
#: element with ``|g| >> eps``, so a parameter whose gradient is within float32 rounding of zero
#: moves by ``+lr`` or ``-lr``: its error is ``0`` or ``2 lr`` rather than of a rounding size, and
#: eager shows it only in a run that flips that element too. With 3 draws the artifact flipped an
#: element no eager run had in 2 of 8 ill-conditioned ClipPPOLoss exports (spread 1e-4); with 10,
#: 0 of 32. The K eager steps of a small loss cost little next to the export.
TRAIN_JITTER_DRAWS = 10


def _train_tolerances(fl, layout, initial, batches, hps, ref, dtype) -> dict[str, dict[str, float]]:
    """Conditioning-aware tolerances of a train-step golden sample below float64 (docs/design.md,
    "Golden sample format"): the K eager ``torch.optim`` steps are also run in the artifact
    ``dtype`` (``eager_train_steps``, the float64 reference's code), on the golden initial state and
    batches and on ulp-jittered copies of them (``conditioning_errors``); per float output (loss
    outputs, ``grad_norm``, new parameters and optimizer state) the largest error against the
    float64 reference over the K steps sets ``output_tolerance``. Empty for float64 (defaults)."""
    from rlexport.export.common import conditioning_errors, merge_errors, output_tolerance

    if not (dtype.is_floating_point and torch.finfo(dtype).bits < 64):
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


# --------------------------------------------------------------------------------------------
# validation: K steps in ONNX Runtime vs eager torch.optim


@dataclass
class TrainStepReport:
    """``validate_train_step``'s result: per-step max abs differences (ORT vs eager)."""

    path: str
    optimizer: str
    dtype: str
    k: int
    batch_sizes: list[int | None]
    atol_params: float
    rtol_outputs: float
    max_abs_param_diff: float
    max_abs_state_diff: float
    max_abs_loss_diff: dict[str, float]
    max_abs_grad_norm_diff: float
    per_step_param_diff: list[float]
    passed: bool
    failures: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __str__(self) -> str:
        lines = [
            f"train step {self.path} ({self.optimizer}, {self.dtype}): {self.k} steps in ONNX Runtime vs eager torch.optim"
            f" — {'PASSED' if self.passed else 'FAILED'}",
            f"  batch sizes: {self.batch_sizes}",
            f"  max |param diff| {self.max_abs_param_diff:.3g} (bound {self.atol_params:.3g}); "
            f"max |optimizer state diff| {self.max_abs_state_diff:.3g}; max |grad_norm diff| {self.max_abs_grad_norm_diff:.3g}",
            "  max |loss diff|: " + ", ".join(f"{k} {v:.3g}" for k, v in self.max_abs_loss_diff.items()),
        ]
        lines += [f"  {f}" for f in self.failures]
        return "\n".join(lines)


def default_parity_bounds(dtype: torch.dtype | str) -> tuple[float, float]:
    """``(max abs param diff, rtol of outputs)``, ORT vs eager torch in the same dtype, K=20."""
    name = dtype if isinstance(dtype, str) else str(dtype).replace("torch.", "")
    return (1e-10, 1e-8) if name == "float64" else (1e-5, 1e-4)


def validate_train_step(
    path: str | os.PathLike,
    k: int = 20,
    *,
    loss: nn.Module | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    seed: int = 0,
    providers: Sequence[str] | None = None,
    batch_sizes: Sequence[int] | None = None,
) -> TrainStepReport:
    """Run ``k`` steps of the train-step artifact ``path`` in ONNX Runtime and ``k`` eager PyTorch
    steps (same dtype: ``loss(**batch)``, backward, ``clip_grad_norm_``, ``torch.optim``) from the
    golden sample's initial state; batches are the golden batches resampled to changing sizes
    (``batch_sizes``, cycled), hyper-parameters the golden cases' (cycled, so lr changes).

    ``loss`` defaults to the pickled ``X.loss.pt`` written by the exporter. ``atol`` bounds the
    max abs parameter difference over all steps; ``rtol`` the loss and grad-norm differences
    (relative to max(1, |value|)); defaults by dtype (:func:`default_parity_bounds`).

    Below float64, an ill-conditioned output (a normalised-advantage objective; an Adam step of a
    gradient within rounding of zero) differs between two correct float32 programs by about as
    much as eager float32 differs from float64. The golden sample records, per output, that
    conditioning-based tolerance (measured with jittered eager runs when it was written); with
    default bounds, each output's bound is at least its recorded ``atol`` (largest over the
    golden steps). Explicit ``atol``/``rtol`` are used as given.
    """
    from rlexport.export.golden import read_golden
    from rlexport.runtime.trainer import OnnxTrainer

    meta = read_metadata(path)
    if meta.get("kind") != "train_step":
        raise ValueError(f"{path}: not a train-step artifact (kind {meta.get('kind')!r})")
    layout = TrainStepLayout.from_json(meta["layout"])
    sample = read_golden(golden_dir(path))
    if loss is None:
        mp = module_path(path)
        if not os.path.exists(mp):
            raise FileNotFoundError(f"validate_train_step: no {mp}; pass loss= (the eager loss module)")
        loss = torch.load(mp, weights_only=False)
    dtype = {"float32": torch.float32, "float64": torch.float64}[meta["dtype"]]
    d_atol, d_rtol = default_parity_bounds(dtype)
    explicit_atol, explicit_rtol = atol, rtol
    atol = d_atol if atol is None else atol
    rtol = d_rtol if rtol is None else rtol

    axes = {n: {int(a): l for a, l in v.items()} for n, v in meta.get("dynamic_axes", {}).items()}
    gen = torch.Generator().manual_seed(seed)
    plain_names = [b for b in layout.batch if b not in layout.loss_state]
    steps = []
    sizes_used: list[int | None] = []
    for i in range(k):
        case = sample.cases[i % len(sample.cases)]
        batch = {n: torch.from_numpy(np.array(case.inputs[n])) for n in plain_names}
        size = None
        if axes and batch_sizes:
            size = int(batch_sizes[i % len(batch_sizes)])
        elif axes:
            size = 2 + (7 * i + 3) % 29
        if size is not None:
            batch = resample_batch(batch, size, gen, axes)
        hp = {n[len(HP_PREFIX):]: torch.from_numpy(np.array(case.inputs[n])) for n in case.inputs if n.startswith(HP_PREFIX)}
        steps.append((batch, hp))
        sizes_used.append(size)

    initial = {n: torch.from_numpy(np.array(v)) for n, v in sample.initial_state.items()}
    ref = eager_train_steps(loss, layout, initial, steps, dtype=dtype)
    recorded: dict[str, float] = {}  # output -> the golden sample's per-output atol (largest over its steps)
    if explicit_atol is None and explicit_rtol is None:
        for case in sample.cases:
            for name in case.outputs:
                recorded[name] = max(recorded.get(name, 0.0), sample.tolerance(case, name)[1])

    trainer = OnnxTrainer(path, providers=providers)
    trainer.load_state_dict(initial)
    failures: list[str] = []
    per_step, loss_diff, state_diff, norm_diff = [], {k_: 0.0 for k_ in layout.out_keys}, 0.0, 0.0
    for i, ((batch, hp), want) in enumerate(zip(steps, ref)):
        got = trainer.step(batch, _raw=True, **hp)
        pd = 0.0
        for n in layout.params:
            name = NEW_PREFIX + PARAM_PREFIX + n
            d = _maxdiff(got[name], want[name])
            pd = max(pd, d)
            bound = max(atol, recorded.get(name, 0.0))
            if not d <= bound:
                failures.append(f"step {i}: parameter {n} differs by {d:.3g} (> {bound:.3g})")
        per_step.append(pd)
        for s in layout.slots:
            name = NEW_PREFIX + layout.state_input(s)
            state_diff = max(state_diff, _maxdiff(got[name], want[name]))
        for k_ in layout.out_keys:
            d = _maxdiff(got[k_], want[k_])
            loss_diff[k_] = max(loss_diff[k_], d)
            scale = max(1.0, float(np.max(np.abs(want[k_].double().numpy()))) if want[k_].numel() else 1.0)
            bound = max(rtol * scale, recorded.get(k_, 0.0))
            if not d <= bound:
                failures.append(f"step {i}: {k_} differs by {d:.3g} (> {bound:.3g})")
        nd = _maxdiff(got[GRAD_NORM], want[GRAD_NORM])
        norm_diff = max(norm_diff, nd)
        bound = max(rtol * max(1.0, float(want[GRAD_NORM])), recorded.get(GRAD_NORM, 0.0))
        if not nd <= bound:
            failures.append(f"step {i}: grad_norm differs by {nd:.3g} (> {bound:.3g})")
    return TrainStepReport(
        path=os.fspath(path), optimizer=layout.optimizer, dtype=meta["dtype"], k=k, batch_sizes=sizes_used,
        atol_params=atol, rtol_outputs=rtol, max_abs_param_diff=max(per_step, default=0.0),
        max_abs_state_diff=state_diff, max_abs_loss_diff=loss_diff, max_abs_grad_norm_diff=norm_diff,
        per_step_param_diff=per_step, passed=not failures, failures=failures,
    )


def _maxdiff(a, b) -> float:
    a = np.asarray(a.detach().numpy() if isinstance(a, Tensor) else a, dtype=np.float64)
    b = np.asarray(b.detach().numpy() if isinstance(b, Tensor) else b, dtype=np.float64)
    if a.size == 0:
        return 0.0
    d = np.abs(a - b)
    return float(np.nanmax(d)) if not np.isnan(d).all() else math.inf
