"""Functional optimizers and gradient clipping with tensor hyper-parameters.

Pure functions that reproduce ``torch.optim.Adam``, ``torch.optim.AdamW``, ``torch.optim.SGD``
(the single-tensor path that CPU tensors take; the foreach path computes the same values) and
``torch.nn.utils.clip_grad_norm_`` operation by operation, so that a graph traced from them
matches eager PyTorch to the last few ulps. Every hyper-parameter is a 0-d tensor, so a traced
graph takes it as an input and a learning-rate schedule needs no re-export. Nothing branches on
tensor values: "is this the first step?" is a ``torch.where`` on the step counter.

Scalar arithmetic that PyTorch does on Python floats (bias corrections, ``lr / bc1``,
``1 - lr * wd``) is done here on float64 0-d tensors and cast to the parameter dtype just where
PyTorch's kernels cast their scalar arguments, which is what makes float32 parity exact.
Hyper-parameters and step counters are therefore float64 0-d tensors (``nesterov`` is bool).

State layout (names without the optimizer prefix; see ``rlexport.artifact.naming`` for the graph
names):

- Adam / AdamW: per parameter ``exp_avg``, ``exp_avg_sq`` (zeros initially); one shared ``step``
  (float64, 0 initially; ``torch.optim`` keeps one per parameter, all equal).
- SGD: per parameter ``momentum_buffer`` (zeros initially; ignored at step 0, where PyTorch
  initialises it to the gradient); one shared ``step`` (float64 counter, needed for that rule).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from rlexport.inputs import choice

Tensor = torch.Tensor

HP_DTYPE = torch.float64

#: Hyper-parameters of each optimizer in graph-input order, with torch.optim's defaults.
#: ``max_grad_norm`` (``clip_grad_norm_``'s ``max_norm``; ``inf`` disables clipping) is shared.
OPTIMIZER_DEFAULTS: dict[str, dict[str, float | bool]] = {
    "adam": {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0, "max_grad_norm": math.inf},
    "adamw": {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 1e-2, "max_grad_norm": math.inf},
    "sgd": {"lr": 1e-3, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False, "max_grad_norm": math.inf},
}

#: Per-parameter state slots of each optimizer (each also has one shared ``step``).
OPTIMIZER_SLOTS: dict[str, tuple[str, ...]] = {
    "adam": ("exp_avg", "exp_avg_sq"),
    "adamw": ("exp_avg", "exp_avg_sq"),
    "sgd": ("momentum_buffer",),
}

OPTIMIZERS = tuple(OPTIMIZER_DEFAULTS)


def hyperparam_tensor(name: str, value: float | bool | Tensor) -> Tensor:
    """A hyper-parameter as the graph takes it: a float64 0-d tensor (``nesterov``: bool)."""
    dtype = torch.bool if name == "nesterov" else HP_DTYPE
    if isinstance(value, Tensor):
        return value.detach().to(dtype=dtype).reshape(())
    return torch.tensor(value, dtype=dtype)


def default_hyperparams(optimizer: str, **overrides: float | bool) -> dict[str, Tensor]:
    """``{name: 0-d tensor}`` for ``optimizer``: torch.optim's defaults updated with ``overrides``.

    ``betas=(b1, b2)`` is accepted as torch.optim spells it. Unknown names raise ``TypeError``.
    """
    optimizer = choice("default_hyperparams", "optimizer", optimizer, OPTIMIZERS)
    values = dict(OPTIMIZER_DEFAULTS[optimizer])
    overrides = dict(overrides)
    if "betas" in overrides:
        if optimizer == "sgd":
            raise TypeError("default_hyperparams: SGD has no 'betas'")
        values["beta1"], values["beta2"] = overrides.pop("betas")
    unknown = [k for k in overrides if k not in values]
    if unknown:
        raise TypeError(
            f"default_hyperparams: unknown hyper-parameter {', '.join(map(repr, unknown))} for "
            f"{optimizer}; accepted: {list(values)} (and 'betas')"
        )
    values.update(overrides)
    return {k: hyperparam_tensor(k, v) for k, v in values.items()}


def init_state(optimizer: str, params: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Initial optimizer state: ``{"<slot>.<param name>": zeros, "step": 0.}`` (float64 step)."""
    optimizer = choice("init_state", "optimizer", optimizer, OPTIMIZERS)
    state = {}
    for slot in OPTIMIZER_SLOTS[optimizer]:
        for name, p in params.items():
            state[f"{slot}.{name}"] = torch.zeros_like(p)
    state["step"] = torch.zeros((), dtype=HP_DTYPE)
    return state


# --------------------------------------------------------------------------------------------
# clip_grad_norm_


def total_grad_norm(grads: Sequence[Tensor]) -> Tensor:
    """``clip_grad_norm_``'s total norm: the 2-norm of the per-tensor 2-norms."""
    norms = [torch.linalg.vector_norm(g, 2.0) for g in grads]
    return torch.linalg.vector_norm(torch.stack(norms), 2.0)


def clip_grads(grads: Sequence[Tensor], max_norm: Tensor) -> tuple[list[Tensor], Tensor]:
    """Functional ``torch.nn.utils.clip_grad_norm_(params, max_norm)``.

    Returns ``(clipped grads, total_norm)`` where ``total_norm`` is the pre-clip norm, as
    ``clip_grad_norm_`` returns it. The coefficient is ``max_norm / (total_norm + 1e-6)``
    clamped to 1 (always applied, as PyTorch does); ``max_norm = inf`` leaves grads unchanged.
    """
    total = total_grad_norm(grads)
    coef = clip_coefficient(total, max_norm)
    return [g * coef for g in grads], total


def clip_coefficient(total: Tensor, max_norm: Tensor) -> Tensor:
    """``clip_grad_norm_``'s factor ``min(max_norm / (total + 1e-6), 1)`` in ``total``'s dtype."""
    dtype = total.dtype
    # PyTorch: ``max_norm / (total_norm + 1e-6)`` is ``reciprocal(total + 1e-6) * max_norm``
    # with both scalars rounded to the gradient dtype.
    coef = torch.reciprocal(total + torch.tensor(1e-6, dtype=dtype)) * max_norm.to(dtype)
    return torch.clamp(coef, max=torch.tensor(1.0, dtype=dtype))


# --------------------------------------------------------------------------------------------
# optimizers


def _lerp(start: Tensor, end: Tensor, weight: Tensor) -> Tensor:
    """``torch.lerp`` with a 0-d ``weight`` by the formulas of its CPU kernel (which may contract
    them into FMAs, a last-ulp difference): ``start +
    weight * diff`` below weight 0.5, else ``end - diff * (1 - weight)``, written as ``end +
    (weight - 1) * diff`` (the same number: ``weight - 1`` is ``-(1 - weight)`` exactly), so that
    the formula is chosen on the scalars and only one of the two is computed on the tensors."""
    diff = end - start
    low = weight.abs() < 0.5
    return torch.where(low, start, end) + torch.where(low, weight, weight - 1) * diff


def adam_step(
    params: Mapping[str, Tensor],
    grads: Mapping[str, Tensor],
    state: Mapping[str, Tensor],
    hp: Mapping[str, Tensor],
    *,
    decoupled_weight_decay: bool = False,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """One ``torch.optim.Adam`` (``decoupled_weight_decay=True``: ``AdamW``) step.

    ``state``/``hp`` as :func:`init_state`/:func:`default_hyperparams`. Returns
    ``(new params, new state)``; nothing is modified in place.
    """
    groups = _dtype_groups(params)
    flat_grads = [_flatten([grads[n] for n in names]) for names in groups]
    return _adam_groups(params, groups, flat_grads, state, hp, decoupled_weight_decay)


def _adam_groups(params, groups, flat_grads, state, hp, decoupled_weight_decay):
    """Adam on each dtype group ``groups[i]`` (parameter names) with its flat gradient
    ``flat_grads[i]`` (the group's gradients concatenated in that order, ``[numel]``)."""
    lr, beta1, beta2 = hp["lr"].to(HP_DTYPE), hp["beta1"].to(HP_DTYPE), hp["beta2"].to(HP_DTYPE)
    eps, wd = hp["eps"].to(HP_DTYPE), hp["weight_decay"].to(HP_DTYPE)
    step = state["step"].to(HP_DTYPE) + 1
    # Python-float scalar math of torch.optim, in float64.
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    step_size = lr / bias_correction1
    bias_correction2_sqrt = bias_correction2**0.5
    decay = 1 - lr * wd
    new_params, new_state = {}, {"step": step}
    # Every parameter of one dtype is updated as one flat vector: the same elementwise formulas,
    # so the same numbers, in ~20 graph nodes instead of ~20 per parameter (an exported train
    # step's cost is mostly per-node overhead on small networks).
    for names, grad in zip(groups, flat_grads):
        dtype = params[names[0]].dtype
        param = _flatten([params[n] for n in names])
        if decoupled_weight_decay:
            param = param * decay.to(dtype)
        else:
            # grad.add(param, alpha=wd); wd == 0 adds exact zeros, as skipping would.
            grad = grad + wd.to(dtype) * param
        exp_avg = _lerp(_flatten([state[f"exp_avg.{n}"] for n in names]), grad, (1 - beta1).to(dtype))
        exp_avg_sq = _flatten([state[f"exp_avg_sq.{n}"] for n in names]) * beta2.to(dtype) + (1 - beta2).to(dtype) * grad * grad
        denom = exp_avg_sq.sqrt() / bias_correction2_sqrt.to(dtype) + eps.to(dtype)
        like = [params[n] for n in names]
        for n, new_p, m, v in zip(names, _unflatten(param + (-step_size).to(dtype) * exp_avg / denom, like),
                                  _unflatten(exp_avg, like), _unflatten(exp_avg_sq, like)):
            new_params[n] = new_p
            new_state[f"exp_avg.{n}"] = m
            new_state[f"exp_avg_sq.{n}"] = v
    return {n: new_params[n] for n in params}, new_state


def clipped_step(
    optimizer: str,
    params: Mapping[str, Tensor],
    grads: Mapping[str, Tensor],
    state: Mapping[str, Tensor],
    hp: Mapping[str, Tensor],
) -> tuple[dict[str, Tensor], dict[str, Tensor], Tensor]:
    """``clip_grad_norm_(params, hp["max_grad_norm"])`` then one ``optimizer`` step:
    ``(new params, new state, pre-clip total norm)``.

    Adam/AdamW clip the flat gradient vector of each dtype group that the step uses anyway: the
    total norm is the 2-norm of all gradient elements taken at once (of the groups' norms when
    there are several dtypes) rather than ``clip_grad_norm_``'s 2-norm of per-tensor norms. The
    two are equal in exact arithmetic and differ by rounding only (a few ulps of the norm); the
    flat form is one reduction instead of one per parameter. SGD clips per tensor
    (:func:`clip_grads`).
    """
    if optimizer not in ("adam", "adamw"):
        names = list(params)
        clipped, norm = clip_grads([grads[n] for n in names], hp["max_grad_norm"])
        new_params, new_state = STEP_FUNCTIONS[optimizer](params, dict(zip(names, clipped)), state, hp)
        return new_params, new_state, norm
    groups = _dtype_groups(params)
    flat_grads = [_flatten([grads[n] for n in names]) for names in groups]
    norms = [torch.linalg.vector_norm(g, 2.0) for g in flat_grads]
    total = norms[0] if len(norms) == 1 else torch.linalg.vector_norm(torch.stack(norms), 2.0)
    coef = clip_coefficient(total, hp["max_grad_norm"])
    clipped = [g * coef.to(g.dtype) for g in flat_grads]
    new_params, new_state = _adam_groups(params, groups, clipped, state, hp, optimizer == "adamw")
    return new_params, new_state, total


def _dtype_groups(tensors: Mapping[str, Tensor]) -> list[list[str]]:
    """The names of ``tensors`` grouped by dtype, in first-seen order."""
    groups: dict[torch.dtype, list[str]] = {}
    for name, t in tensors.items():
        groups.setdefault(t.dtype, []).append(name)
    return list(groups.values())


def _as_vector(t: Tensor) -> Tensor:
    return t if t.dim() == 1 else t.reshape(-1)  # no graph node for what is already 1-D (biases)


def _flatten(tensors: Sequence[Tensor]) -> Tensor:
    """One 1-D tensor of ``tensors`` (a single tensor is only reshaped)."""
    if len(tensors) == 1:
        return _as_vector(tensors[0])
    return torch.cat([_as_vector(t) for t in tensors])


def _unflatten(flat: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    """``flat`` cut back into tensors shaped as ``like``."""
    if len(like) == 1:
        return [flat if like[0].dim() == 1 else flat.reshape(like[0].shape)]
    return [c if t.dim() == 1 else c.reshape(t.shape) for c, t in zip(torch.split(flat, [t.numel() for t in like]), like)]


def adamw_step(params, grads, state, hp):
    """One ``torch.optim.AdamW`` step (decoupled weight decay); see :func:`adam_step`."""
    return adam_step(params, grads, state, hp, decoupled_weight_decay=True)


def sgd_step(
    params: Mapping[str, Tensor],
    grads: Mapping[str, Tensor],
    state: Mapping[str, Tensor],
    hp: Mapping[str, Tensor],
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """One ``torch.optim.SGD`` step (momentum, dampening, nesterov, weight decay).

    PyTorch sets the momentum buffer to the gradient on the first step; here that is
    ``where(step == 0, grad, ...)``, and ``momentum == 0`` uses the gradient directly.
    """
    lr, momentum = hp["lr"].to(HP_DTYPE), hp["momentum"].to(HP_DTYPE)
    dampening, wd = hp["dampening"].to(HP_DTYPE), hp["weight_decay"].to(HP_DTYPE)
    nesterov = hp["nesterov"].to(torch.bool)
    step = state["step"].to(HP_DTYPE)
    first = step == 0
    no_momentum = momentum == 0
    new_params, new_state = {}, {"step": step + 1}
    for name, param in params.items():
        dtype = param.dtype
        grad = grads[name] + wd.to(dtype) * param
        buf = state[f"momentum_buffer.{name}"]
        buf = torch.where(first | no_momentum, grad, buf * momentum.to(dtype) + (1 - dampening).to(dtype) * grad)
        direction = torch.where(nesterov, grad + momentum.to(dtype) * buf, buf)
        direction = torch.where(no_momentum, grad, direction)
        new_params[name] = param + (-lr).to(dtype) * direction
        new_state[f"momentum_buffer.{name}"] = torch.where(no_momentum, torch.zeros_like(buf), buf)
    return new_params, new_state


STEP_FUNCTIONS = {"adam": adam_step, "adamw": adamw_step, "sgd": sgd_step}


@dataclass
class FunctionalOptimizer:
    """A functional optimizer by name: ``init(params)``, ``step(params, grads, state, hp)``."""

    name: str
    defaults: dict[str, float | bool] = field(init=False)

    def __post_init__(self) -> None:
        self.name = choice("FunctionalOptimizer", "optimizer", self.name, OPTIMIZERS)
        self.defaults = dict(OPTIMIZER_DEFAULTS[self.name])

    @property
    def slots(self) -> tuple[str, ...]:
        return OPTIMIZER_SLOTS[self.name]

    def init(self, params: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return init_state(self.name, params)

    def hyperparams(self, **overrides) -> dict[str, Tensor]:
        return default_hyperparams(self.name, **overrides)

    def step(self, params, grads, state, hp):
        return STEP_FUNCTIONS[self.name](params, grads, state, hp)


# --------------------------------------------------------------------------------------------
# conversion to and from torch.optim


def make_torch_optimizer(optimizer: str, params: Sequence[Tensor], hp: Mapping[str, float | bool | Tensor]):
    """The ``torch.optim`` optimizer equivalent to ``optimizer`` with hyper-parameters ``hp``
    (torch.optim's defaults for those not given; ``betas=`` or ``beta1``/``beta2``)."""
    hpf = {k: v.item() for k, v in default_hyperparams(optimizer, **{
        k: (v.item() if isinstance(v, Tensor) and k != "betas" else v) for k, v in hp.items()}).items()}
    if optimizer in ("adam", "adamw"):
        cls = torch.optim.Adam if optimizer == "adam" else torch.optim.AdamW
        return cls(params, lr=float(hpf["lr"]), betas=(float(hpf["beta1"]), float(hpf["beta2"])),
                   eps=float(hpf["eps"]), weight_decay=float(hpf["weight_decay"]))
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=float(hpf["lr"]), momentum=float(hpf["momentum"]),
                               dampening=float(hpf["dampening"]), weight_decay=float(hpf["weight_decay"]),
                               nesterov=bool(hpf["nesterov"]))
    raise ValueError(f"make_torch_optimizer: optimizer={optimizer!r} is not supported; choose one of {list(OPTIMIZERS)}")


def set_torch_hyperparams(opt: torch.optim.Optimizer, optimizer: str, hp: Mapping[str, float | bool | Tensor]) -> None:
    """Write ``hp`` into every param group of ``opt`` (a schedule step, as a user would)."""
    hpf = {k: (v.item() if isinstance(v, Tensor) else v) for k, v in hp.items()}
    if "betas" in hpf:
        hpf["beta1"], hpf["beta2"] = hpf.pop("betas")
    for group in opt.param_groups:
        for k, v in hpf.items():
            if k in ("beta1", "beta2"):
                b = list(group["betas"])
                b[0 if k == "beta1" else 1] = float(v)
                group["betas"] = tuple(b)
            elif k != "max_grad_norm":
                group[k] = bool(v) if k == "nesterov" else float(v)


def state_to_torch(optimizer: str, opt: torch.optim.Optimizer, params: Mapping[str, Tensor],
                   state: Mapping[str, Tensor]) -> None:
    """Load functional ``state`` into ``opt`` (whose params are ``params``' tensors, same order)."""
    step = state["step"].item()
    for name, p in params.items():
        if optimizer in ("adam", "adamw"):
            opt.state[p] = {
                "step": torch.tensor(float(step), dtype=torch.get_default_dtype() if torch.get_default_dtype() == torch.float64 else torch.float32),
                "exp_avg": state[f"exp_avg.{name}"].detach().clone().to(p.dtype),
                "exp_avg_sq": state[f"exp_avg_sq.{name}"].detach().clone().to(p.dtype),
            }
        else:
            buf = state[f"momentum_buffer.{name}"]
            opt.state[p] = {"momentum_buffer": None if step == 0 else buf.detach().clone().to(p.dtype)}


def state_from_torch(optimizer: str, opt: torch.optim.Optimizer, params: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The functional state of a ``torch.optim`` optimizer over ``params`` (name → tensor)."""
    state: dict[str, Tensor] = {}
    steps = []
    for slot in OPTIMIZER_SLOTS[optimizer]:
        for name, p in params.items():
            s = opt.state.get(p, {})
            value = s.get(slot)
            state[f"{slot}.{name}"] = torch.zeros_like(p) if value is None else value.detach().clone()
            if "step" in s:
                steps.append(float(s["step"]))
            elif slot == "momentum_buffer" and value is not None:
                steps.append(1.0)
    if optimizer == "sgd":
        # torch.optim.SGD keeps no counter: any step > 0 means "buffer initialised".
        step = max(steps) if steps else 0.0
    else:
        step = max(steps) if steps else 0.0
    state["step"] = torch.tensor(step, dtype=HP_DTYPE)
    return state
