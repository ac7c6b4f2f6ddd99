"""Pure tensor helpers shared by the losses: distance losses, value clipping, reduction,
advantage standardisation, closed-form KL divergences and Monte-Carlo estimates.

Every function here is a plain function of tensors (no module state, no ``.item()``, no branch
on tensor values), so it traces the same way under ``torch.export`` and the ONNX exporter.
Constants are built in the input dtype (:func:`rlexport.inputs.constant_like`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from rlexport.inputs import constant_like

LOSS_CRITIC_TYPES = ("l1", "l2", "smooth_l1")
REDUCTIONS = ("none", "mean", "sum")

# TorchRL's message for ``gamma=`` / ``lmbda=`` in a loss constructor (a TypeError there too).
GAMMA_LMBDA_DEPREC_ERROR = (
    "Passing gamma / lambda parameters through the loss constructor "
    "is a deprecated feature. To customize your value function, "
    "run `loss_module.make_value_estimator(ValueEstimators.<value_fun>, gamma=val)`."
)


def distance_loss(
    v1: torch.Tensor, v2: torch.Tensor, loss_function: str, strict_shape: bool = True, reduction: str = "none"
) -> torch.Tensor:
    """Element-wise ``l1`` / ``l2`` / ``smooth_l1`` distance (TorchRL's ``distance_loss``).

    ``v1`` and ``v2`` have one shape (``strict_shape``); ``reduction`` is ``"none"`` (the
    element-wise distance, that shape), ``"mean"`` or ``"sum"`` (0-d).
    """
    if strict_shape and v1.shape != v2.shape:
        raise ValueError(
            f"distance_loss: the inputs have shapes {list(v1.shape)} and {list(v2.shape)}; they must match"
        )
    if loss_function == "l2":
        return F.mse_loss(v1, v2, reduction=reduction)
    if loss_function == "l1":
        return F.l1_loss(v1, v2, reduction=reduction)
    if loss_function == "smooth_l1":
        return F.smooth_l1_loss(v1, v2, reduction=reduction)
    raise ValueError(f"distance_loss: loss_function={loss_function!r} is not supported; choose one of {list(LOSS_CRITIC_TYPES)}")


def clip_value_loss(
    old_state_value: torch.Tensor,
    state_value: torch.Tensor,
    clip_value: torch.Tensor,
    target_return: torch.Tensor,
    loss_value: torch.Tensor,
    loss_critic_type: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO value clipping: the worse of the clipped and unclipped value losses, and the clip fraction."""
    pre_clipped = state_value - old_state_value
    clipped = pre_clipped.clamp(-clip_value, clip_value)
    clip_fraction = mean_all((pre_clipped != clipped).to(state_value.dtype)).detach()
    loss_value_clipped = distance_loss(target_return, old_state_value + clipped, loss_critic_type)
    return torch.maximum(loss_value, loss_value_clipped), clip_fraction


def mean_all(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor.mean()`` (0-d) written as a mean over every dim listed: the same kernel and the same
    number, exported as one ``ReduceMean`` where ``.mean()`` exports as ``ReduceMean`` + ``Squeeze``."""
    return tensor.mean(dim=tuple(range(tensor.ndim))) if tensor.ndim else tensor.mean()


def reduce(tensor: torch.Tensor, reduction: str) -> torch.Tensor:
    """``none`` / ``mean`` / ``sum`` over every element."""
    if reduction == "mean":
        return mean_all(tensor)
    if reduction == "sum":
        return tensor.sum()
    if reduction == "none":
        return tensor
    raise ValueError(f"reduce: reduction={reduction!r} is not supported; choose one of {list(REDUCTIONS)}")


def reduce_loss(tensor: torch.Tensor, reduction: str) -> torch.Tensor:
    """TorchRL's treatment of every ``loss_*`` output: reduce, then drop a trailing feature dim."""
    out = reduce(tensor, reduction)
    return out.squeeze(-1) if out.ndim else out


def standardize(x: torch.Tensor, exclude_dims: tuple[int, ...] = (), eps: float | None = None) -> torch.Tensor:
    """``(x - mean) / max(std, eps)`` over every dim but ``exclude_dims`` (TorchRL's ``_standardize``).

    ``std`` is the unbiased estimate; ``eps`` defaults to float32's resolution (1e-6) as in TorchRL.
    """
    if eps is None:
        eps = torch.finfo(torch.float32).resolution
    eps_t = constant_like(eps, x)
    if not exclude_dims:
        return (x - mean_all(x)) / torch.clamp_min(x.std(), eps_t)
    ndim = x.ndim
    excluded = {d % ndim for d in exclude_dims}
    if len(excluded) != len(exclude_dims):
        raise ValueError(f"standardize: exclude_dims={tuple(exclude_dims)} has repeating elements")
    included = tuple(d for d in range(ndim) if d not in excluded)
    if not included:
        return x
    mean = x.mean(dim=included, keepdim=True)
    std = x.std(dim=included, keepdim=True)
    return (x - mean) / torch.clamp_min(std, eps_t)


def maybe_standardize(x: torch.Tensor, exclude_dims: tuple[int, ...] = ()) -> torch.Tensor:
    """TorchRL's ``normalize_advantage`` rule: :func:`standardize` when ``x`` has more than one
    element (``x.numel() > 1``, counted over every dim, ``exclude_dims`` or not), else ``x``.

    With concrete shapes (eager, a static export) the rule is a Python branch, as in TorchRL.
    With a symbolic shape (``torch.export`` / ``make_fx`` with a dynamic batch) a Python branch
    would be decided once for every batch size (a dynamic dim is assumed >= 2), so the rule
    becomes ``where(numel > 1, standardize(x), x)`` on the numel as a graph scalar: the graph
    gives the same numbers as eager at batch 1 and at every other batch size.
    """
    n = x.numel()
    if not isinstance(n, torch.SymInt):
        return standardize(x, exclude_dims) if n > 1 else x
    many = torch.scalar_tensor(n, dtype=torch.int64, device=x.device) > 1
    return torch.where(many, standardize(x, exclude_dims), x)


def explained_variance(target: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
    """``1 - Var[target - prediction] / (Var[target] + eps)`` along dim 0 (a no-grad diagnostic)."""
    target = target.detach()
    prediction = prediction.detach()
    eps = constant_like(torch.finfo(target.dtype).eps, target)
    resid = torch.var(target - prediction, correction=0, dim=0)
    total = torch.var(target, correction=0, dim=0)
    return 1.0 - resid / (total + eps)


# --------------------------------------------------------------------------------------------
# Closed-form KL divergences between two distributions of the same family.
# --------------------------------------------------------------------------------------------


def _kind(dist) -> str:
    return type(dist).__name__


def _categorical_kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    # torch.distributions' categorical KL, with masks written as ``where`` (no in-place indexing).
    p_logits = p_logits - p_logits.logsumexp(-1, keepdim=True)
    q_logits = q_logits - q_logits.logsumexp(-1, keepdim=True)
    p_probs = p_logits.exp()
    t = p_probs * (p_logits - q_logits)
    t = torch.where(q_logits.exp() == 0, torch.full_like(t, math.inf), t)
    t = torch.where(p_probs == 0, torch.zeros_like(t), t)
    return t.sum(-1)


def _normal_kl(p_loc, p_scale, q_loc, q_scale) -> torch.Tensor:
    var_ratio = (p_scale / q_scale).pow(2)
    t1 = ((p_loc - q_loc) / q_scale).pow(2)
    return 0.5 * (var_ratio + t1 - 1 - var_ratio.log())


def _get(dist, *names):
    for name in names:
        value = getattr(dist, name, None)
        if isinstance(value, torch.Tensor):
            return value
    return None


def has_analytic_kl(p, q) -> bool:
    """Whether :func:`kl_divergence` has a closed form for this pair of distributions."""
    kinds = {_kind(p), _kind(q)}
    if len(kinds) != 1:
        return False
    kind = kinds.pop()
    if kind in ("Categorical", "OneHotCategorical"):
        return _get(p, "logits") is not None and _get(q, "logits") is not None
    if kind in ("IndependentNormal", "Normal"):
        return _get(p, "loc") is not None and _get(p, "scale") is not None
    if kind == "TanhNormal":
        # KL is invariant under a shared bijection: torch's TransformedDistribution pair rule,
        # which TorchRL uses for its TanhNormal (same tanh/affine transforms on both sides).
        for name in ("low", "high"):
            a, b = getattr(p, name, None), getattr(q, name, None)
            if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a != b:
                return False
        return _get(p, "loc") is not None and _get(p, "scale") is not None
    return False


def kl_divergence(p, q) -> torch.Tensor:
    """``KL(p || q)`` with the batch shape of the distributions (event dims summed).

    Closed forms for Categorical / OneHotCategorical (from the logits), IndependentNormal (from
    ``loc``/``scale``; the last dim is the event dim) and TanhNormal pairs with the same bounds
    (the KL of their pre-tanh normals, as torch's rule for transformed distributions gives
    TorchRL). Raises ``NotImplementedError`` otherwise (Delta): callers use a Monte-Carlo
    estimate.
    """
    if hasattr(p, "kl_divergence"):
        try:
            return p.kl_divergence(q)
        except NotImplementedError:
            pass
    if not has_analytic_kl(p, q):
        raise NotImplementedError(f"no closed-form KL divergence between {_kind(p)} and {_kind(q)}")
    kind = _kind(p)
    if kind in ("Categorical", "OneHotCategorical"):
        return _categorical_kl(p.logits, q.logits)
    kl = _normal_kl(p.loc, p.scale, q.loc, q.scale)
    event_dims = 1
    for name in ("event_dims", "_event_dims", "_event_dim"):
        if isinstance(getattr(p, name, None), int):
            event_dims = getattr(p, name)
            break
    for _ in range(event_dims):
        kl = kl.sum(-1)
    return kl


def sample_and_log_prob(dist, sample_shape: tuple[int, ...], noise: torch.Tensor | None, reparameterize: bool):
    """A sample of ``dist`` and its log-probability, scored from the same draw.

    ``noise`` (standard-normal, shape ``sample_shape + batch + event``) makes the draw an input
    of the computation, so exported graphs are reproducible. Distributions that score the draw
    from its pre-transform value (``rsample_and_log_prob``: TanhNormal) are used that way, as
    TorchRL does; others are scored with ``log_prob(sample)``.
    """
    sample_shape = tuple(sample_shape)
    method = "rsample_and_log_prob" if reparameterize else "sample_and_log_prob"
    if hasattr(dist, method):
        return getattr(dist, method)(sample_shape, noise=noise)
    if hasattr(dist, "rsample_and_log_prob"):
        sample, log_prob = dist.rsample_and_log_prob(sample_shape, noise=noise)
        if not reparameterize:
            sample = sample.detach()
        return sample, log_prob
    sample = dist.rsample(sample_shape, noise=noise)
    if not reparameterize:
        sample = sample.detach()
    return sample, dist.log_prob(sample)
