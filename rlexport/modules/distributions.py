"""Action distributions written for export.

Each class follows the numbers of its TorchRL 0.14.1 / ``torch.distributions`` counterpart
(``torch.distributions.Categorical``, ``torchrl.modules.OneHotCategorical``,
``torchrl.modules.IndependentNormal``, ``torchrl.modules.TanhNormal``,
``torchrl.modules.Delta``), but:

- no ``validate_args`` and no check that looks at tensor values, so ``torch.export`` sees no
  data-dependent guard;
- randomness is an optional explicit input: ``rsample(sample_shape, noise=eps)`` /
  ``sample(sample_shape, noise=u)``; without ``noise`` the torch RNG is used (eager only);
- every constant is a tensor of the parameters' dtype (``rlexport.inputs.constant_like``), so a
  float64 graph stays float64 in ONNX;
- ``atanh`` is ``0.5*(log1p(y) - log1p(-y))`` and ``softplus`` is torch's thresholded
  ``where(x > 20, x, log1p(exp(x)))``, in eager calls and traced graphs alike: ONNX Runtime's
  CPU provider has no float64 ``Atanh``/``Softplus`` kernels (torch's fused kernels agree with
  these forms within a few ulp).

Shapes: ``batch_shape`` is the parameters' shape without the event dims; samples are
``sample_shape + batch_shape + event_shape``; ``log_prob`` and ``entropy`` are
``sample_shape + batch_shape``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from numbers import Number

import torch

from rlexport.inputs import check_action_dtype, check_tensor, constant_like

__all__ = [
    "Distribution",
    "Categorical",
    "OneHotCategorical",
    "IndependentNormal",
    "Normal",
    "TanhNormal",
    "Delta",
    "softplus",
    "atanh",
    "safe_tanh",
    "safe_atanh",
    "entropy_or_estimate",
]

_LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))
_LOG_2 = math.log(2.0)


# --------------------------------------------------------------------------------------------
# Export-friendly elementwise helpers
# --------------------------------------------------------------------------------------------
def softplus(x: torch.Tensor) -> torch.Tensor:
    """``torch.nn.functional.softplus(x)`` (beta 1, threshold 20) without an ONNX ``Softplus``
    node (ONNX Runtime's CPU provider has none for float64).

    torch's kernel returns ``x`` above the threshold and ``log1p(exp(x))`` below; traced graphs
    spell exactly that as ``where(x > 20, x, log1p(exp(min(x, 20))))`` (the clamp keeps the
    unselected branch finite, so no NaN gradient), which TorchRL's ``biased_softplus`` and
    ``TanhTransform`` compute through the same kernel. The gradient at ``x = 0`` is
    ``sigmoid(0) = 0.5``.
    """
    threshold = constant_like(20.0, x)
    return torch.where(x > threshold, x, torch.log1p(torch.exp(torch.clamp(x, max=threshold))))


def atanh(y: torch.Tensor) -> torch.Tensor:
    """``atanh(y)`` as ``0.5*(log1p(y) - log1p(-y))`` (no ONNX ``Atanh`` node; torch's kernel,
    what TorchRL's ``safeatanh`` calls, agrees within a few ulp)."""
    return constant_like(0.5, y) * (torch.log1p(y) - torch.log1p(-y))


def _tanh_limit(x: torch.Tensor) -> torch.Tensor:
    # TorchRL's safetanh_noeps / safeatanh_noeps clamp at 1 - finfo(dtype).resolution.
    return constant_like(1.0 - torch.finfo(x.dtype).resolution, x)


def _needs_custom_grad(x: torch.Tensor) -> bool:
    # A static (metadata-only) branch: the straight-through form below is only needed when a
    # gradient is being recorded; forward-only exports get the plain ops.
    return torch.is_grad_enabled() and x.requires_grad


def safe_tanh(x: torch.Tensor) -> torch.Tensor:
    """TorchRL's ``safetanh_noeps``: ``tanh(x)`` clamped to ``±(1 - resolution)``.

    The gradient is TorchRL's custom one, ``1 - out**2`` with ``out`` the *clamped* value
    (non-zero where the clamp is active).
    """
    lim = _tanh_limit(x)
    out = torch.clamp(torch.tanh(x), -lim, lim)
    if not _needs_custom_grad(x):
        return out
    out_d = out.detach()
    return out_d + (x - x.detach()) * (1 - out_d * out_d)


def safe_atanh(y: torch.Tensor) -> torch.Tensor:
    """TorchRL's ``safeatanh_noeps``: ``atanh`` of ``y`` clamped to ``±(1 - resolution)``.

    The gradient is TorchRL's, ``1 / (1 - clamp(y)**2)`` (not zeroed by the clamp).
    """
    lim = _tanh_limit(y)
    yc = torch.clamp(y, -lim, lim)
    out = atanh(yc)
    if not _needs_custom_grad(y):
        return out
    yc_d = yc.detach()
    return out.detach() + (y - y.detach()) / (1 - yc_d * yc_d)


def _sum_rightmost(x: torch.Tensor, n: int) -> torch.Tensor:
    if n <= 0:
        return x
    if n == 1:
        return x.sum(-1)
    return x.reshape(x.shape[: x.dim() - n] + (-1,)).sum(-1)


def _as_tensor_like(value, like: torch.Tensor) -> torch.Tensor:
    if callable(value) and not isinstance(value, torch.Tensor):
        return value(like)
    return constant_like(value, like)


def _normal_log_prob(value, loc, scale, log_scale=None):
    # torch.distributions.Normal.log_prob, constants in the input dtype. -(d**2) / (2 var) is
    # written d**2 / (-2 var): the same number (negation is exact), one autograd node fewer.
    var = scale * scale
    if log_scale is None:
        log_scale = torch.log(scale)
    return (value - loc) ** 2 / (-2 * var) - log_scale - constant_like(_LOG_SQRT_2PI, loc)


def _normal_entropy(scale, log_scale=None):
    if log_scale is None:
        log_scale = torch.log(scale)
    return constant_like(0.5 + _LOG_SQRT_2PI, scale) + log_scale


def _check_noise(owner: str, noise, expected: torch.Size | None = None) -> torch.Tensor:
    noise = check_tensor(owner, "noise", noise)
    if expected is not None and noise.dim() != len(expected):
        raise ValueError(
            f"{owner}: 'noise' has shape {list(noise.shape)} but a sample has shape "
            f"{list(expected)} (sample_shape + batch_shape + event_shape); they must match"
        )
    return noise


# --------------------------------------------------------------------------------------------
# Base
# --------------------------------------------------------------------------------------------
class Distribution:
    """Common surface: ``batch_shape``, ``event_shape``, ``has_rsample``, sampling with noise."""

    has_rsample: bool = False
    batch_shape: torch.Size
    event_shape: torch.Size
    #: What ``log_prob`` takes: ``"integer"`` (category indices), ``"floating"`` (a point of the
    #: support), or ``None`` (no dtype rule, e.g. a one-hot vector of any dtype).
    action_dtype: str | None = None

    def _check_value(self, value: torch.Tensor) -> torch.Tensor:
        """``log_prob``'s argument, refused by dtype when it cannot be a point of the support."""
        return check_action_dtype(type(self).__name__ + ".log_prob", "value", value, self.action_dtype)

    @property
    def _log_scale(self) -> torch.Tensor:
        # log(scale) of a location-scale distribution, computed once (one kernel and autograd
        # node fewer when a loss asks for both log_prob and the entropy)
        cached = self.__dict__.get("_log_scale_cache")
        if cached is None:
            cached = self.__dict__["_log_scale_cache"] = torch.log(self.scale)
        return cached

    def _extended_shape(self, sample_shape=torch.Size()) -> torch.Size:
        return torch.Size(sample_shape) + self.batch_shape + self.event_shape

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def entropy(self) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no closed-form entropy")

    def rsample(self, sample_shape=torch.Size(), noise: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no reparameterised sampler")

    def sample(self, sample_shape=torch.Size(), noise: torch.Tensor | None = None) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape, noise=noise)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(batch_shape={list(self.batch_shape)}, event_shape={list(self.event_shape)})"


# --------------------------------------------------------------------------------------------
# Discrete
# --------------------------------------------------------------------------------------------
class Categorical(Distribution):
    """``torch.distributions.Categorical``: integer actions of shape ``[*batch]``.

    ``sample(sample_shape, noise=u)`` takes one uniform number in ``[0, 1)`` per draw,
    ``u.shape == sample_shape + batch_shape``, and returns the inverse-CDF index (the category
    ``k`` with ``cdf[k-1] <= u < cdf[k]``). There is no ``rsample`` (``has_rsample = False``),
    as in torch.
    """

    has_rsample = False
    num_params = 1
    action_dtype = "integer"

    def __init__(self, logits: torch.Tensor | None = None, probs: torch.Tensor | None = None):
        if (logits is None) == (probs is None):
            raise ValueError(f"{type(self).__name__}: pass exactly one of 'logits' or 'probs'")
        if logits is not None:
            logits = check_tensor(type(self).__name__, "logits", logits, floating=True)
            # torch computes ``logits - logits.logsumexp(-1, keepdim=True)`` and ``softmax`` of
            # that; ``log_softmax`` and its ``exp`` are the same numbers within a few ulp, with
            # fewer kernels, and none that starts a thread pool at small batch sizes (softmax and
            # logsumexp do: an OpenMP wake-up per call with two threads)
            self.logits = torch.log_softmax(logits, dim=-1)
            self.probs = self.logits.exp()
        else:
            probs = check_tensor(type(self).__name__, "probs", probs, floating=True)
            self.probs = probs / probs.sum(-1, keepdim=True)
            eps = constant_like(torch.finfo(probs.dtype).eps, probs)
            self.logits = torch.log(torch.clamp(self.probs, eps, 1 - eps))
        self.num_samples = self.logits.shape[-1]
        self._num_events = self.num_samples
        self.batch_shape = self.logits.shape[:-1]
        self.event_shape = torch.Size()

    @property
    def param(self) -> torch.Tensor:
        return self.logits

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``log p(value)`` for integer category indices ``value`` (``batch_shape``, or with
        leading sample dims). An index outside ``[0, n)`` gives NaN, in eager and in graphs alike
        (a value-dependent check would be a data-dependent branch)."""
        value = self._check_value(value)
        idx = (value if value.dtype == torch.int64 else value.long()).unsqueeze(-1)
        n = self.logits.shape[-1]
        valid = (idx >= 0) & (idx < n)
        idx = torch.clamp(idx, 0, n - 1)
        if value.shape == self.batch_shape:
            # one value per batch entry: no broadcast needed (same numbers, fewer ops)
            log_p = self.logits.gather(-1, idx)
        else:
            idx, log_pmf = torch.broadcast_tensors(idx, self.logits)
            log_p = log_pmf.gather(-1, idx[..., :1])
        return torch.where(valid, log_p, constant_like(float("nan"), log_p)).squeeze(-1)

    def log_prob_of_draw(self, index: torch.Tensor) -> torch.Tensor:
        """``log_prob(index)`` for an index this distribution drew (``sample``, shape
        ``batch_shape``): in ``[0, n)`` by construction, so the same numbers without the
        out-of-range mask (five kernels fewer on the acting path)."""
        return self.logits.gather(-1, index.unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        min_real = constant_like(torch.finfo(self.logits.dtype).min, self.logits)
        logits = torch.clamp(self.logits, min=min_real)  # torch's clamp (cheaper backward than maximum)
        return -(logits * self.probs).sum(-1)

    def _index(self, sample_shape, noise):
        shape = torch.Size(sample_shape) + self.batch_shape
        if noise is None:
            noise = torch.rand(shape, dtype=self.probs.dtype, device=self.probs.device)
        else:
            noise = _check_noise(type(self).__name__, noise, shape)
        cdf = torch.cumsum(self.probs, dim=-1)
        idx = (cdf < noise.unsqueeze(-1).to(cdf.dtype)).sum(-1)
        return torch.clamp(idx, max=self.num_samples - 1)

    def sample(self, sample_shape=torch.Size(), noise: torch.Tensor | None = None) -> torch.Tensor:
        with torch.no_grad():
            return self._index(sample_shape, noise)

    def rsample(self, sample_shape=torch.Size(), noise=None):
        raise NotImplementedError("Categorical has no reparameterised sampler (torch: has_rsample=False)")

    @property
    def mode(self) -> torch.Tensor:
        return self.probs.argmax(dim=-1)

    @property
    def deterministic_sample(self) -> torch.Tensor:
        return self.mode

    @property
    def mean(self) -> torch.Tensor:
        # torch.distributions.Categorical.mean: undefined, a tensor of NaN.
        return torch.full(self.batch_shape, float("nan"), dtype=self.probs.dtype, device=self.probs.device)


def _one_hot(index: torch.Tensor, n: int) -> torch.Tensor:
    arange = torch.arange(n, device=index.device)
    return (index.unsqueeze(-1) == arange).to(torch.long)


class OneHotCategorical(Categorical):
    """TorchRL's ``OneHotCategorical``: one-hot ``int64`` actions of shape ``[*batch, n]``.

    ``log_prob`` reads ``value.argmax(-1)``; ``mode`` marks every maximal logit (ties give
    several ones, as TorchRL); ``rsample`` is TorchRL's pass-through estimator
    ``one_hot + probs - probs.detach()`` (float). ``has_rsample`` is ``False`` as in TorchRL
    (inherited from ``torch.distributions.Categorical``).
    """

    action_dtype = None  # a one-hot vector of any dtype

    def __init__(self, logits: torch.Tensor | None = None, probs: torch.Tensor | None = None):
        super().__init__(logits=logits, probs=probs)
        # event_shape stays () as in TorchRL 0.14.1 (it subclasses torch's Categorical);
        # torch's own OneHotCategorical reports (n,).

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        value = check_tensor(type(self).__name__, "value", value)
        return super().log_prob(value.argmax(dim=-1))

    def log_prob_of_draw(self, value: torch.Tensor) -> torch.Tensor:
        return super().log_prob_of_draw(value.argmax(dim=-1))

    def sample(self, sample_shape=torch.Size(), noise: torch.Tensor | None = None) -> torch.Tensor:
        with torch.no_grad():
            return _one_hot(self._index(sample_shape, noise), self.num_samples)

    def rsample(self, sample_shape=torch.Size(), noise: torch.Tensor | None = None) -> torch.Tensor:
        out = self.sample(sample_shape, noise=noise)
        probs = self.probs
        return out + probs - probs.detach()

    @property
    def mode(self) -> torch.Tensor:
        return (self.logits == self.logits.max(-1, True)[0]).to(torch.long)

    @property
    def deterministic_sample(self) -> torch.Tensor:
        return self.mode

    @property
    def mean(self) -> torch.Tensor:
        return self.probs


# --------------------------------------------------------------------------------------------
# Continuous
# --------------------------------------------------------------------------------------------
class IndependentNormal(Distribution):
    """TorchRL's ``IndependentNormal``: ``Independent(Normal(loc, scale), event_dim)``.

    ``log_prob``/``entropy`` sum over the last ``event_dim`` dims. With ``tanh_loc=True`` the
    location is ``upscale * tanh(loc / upscale)``.

    Note: TorchRL 0.14.1 applies ``tanh_loc`` only in ``update()``, not in ``__init__`` (so a
    TorchRL actor ignores it); here it is always applied, as TorchRL documents.
    ``rsample(noise=eps)`` returns ``loc + eps * scale`` for a standard-normal ``eps`` of the
    sample's shape.
    """

    has_rsample = True
    num_params = 2
    action_dtype = "floating"

    def __init__(
        self,
        loc: torch.Tensor,
        scale: torch.Tensor | float | Callable[[torch.Tensor], torch.Tensor],
        upscale: float | torch.Tensor = 5.0,
        tanh_loc: bool = False,
        event_dim: int = 1,
    ):
        owner = type(self).__name__
        loc = check_tensor(owner, "loc", loc, floating=True)
        self.tanh_loc = tanh_loc
        self.upscale = upscale
        self._event_dim = event_dim
        if tanh_loc:
            up = constant_like(upscale, loc)
            loc = up * torch.tanh(loc / up)
        scale = _as_tensor_like(scale, loc)
        self.loc = loc
        self.scale = scale
        if loc.shape == scale.shape:  # no broadcast needed
            shape = loc.shape
        else:
            shape = torch.broadcast_shapes(loc.shape, scale.shape)
        n = len(shape) - event_dim
        self.batch_shape = shape[:n]
        self.event_shape = shape[n:]

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        value = self._check_value(value)
        return _sum_rightmost(_normal_log_prob(value, self.loc, self.scale, self._log_scale), self._event_dim)

    def entropy(self) -> torch.Tensor:
        ent = _normal_entropy(self.scale, self._log_scale)
        shape = self.batch_shape + self.event_shape
        if ent.shape != shape:
            ent = ent.expand(shape)
        return _sum_rightmost(ent, self._event_dim)

    def rsample(self, sample_shape=torch.Size(), noise: torch.Tensor | None = None) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        if noise is None:
            noise = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        else:
            noise = _check_noise(type(self).__name__, noise, shape)
        return self.loc + noise * self.scale

    @property
    def mean(self) -> torch.Tensor:
        return self.loc.expand(self.batch_shape + self.event_shape)

    @property
    def mode(self) -> torch.Tensor:
        return self.mean

    @property
    def deterministic_sample(self) -> torch.Tensor:
        return self.mean

    @property
    def stddev(self) -> torch.Tensor:
        return self.scale.expand(self.batch_shape + self.event_shape)

    @property
    def variance(self) -> torch.Tensor:
        return self.stddev.pow(2)


Normal = IndependentNormal


class TanhNormal(Distribution):
    """TorchRL 0.14.1's ``TanhNormal``: ``low + (high-low)/2 * (1 + tanh(x))``, ``x ~ Normal``.

    Exactly TorchRL's computation:

    - ``tanh_loc=True``: ``loc = upscale * tanh(loc / upscale)`` and, when ``low``/``high`` are
      not ``-1``/``1``, then ``loc = loc + (high - low)/2 + low`` (TorchRL shifts the pre-tanh
      location by the interval's midpoint);
    - the sample is ``c + s * safe_tanh(x)`` with ``c = (high+low)/2``, ``s = (high-low)/2``;
      ``safe_tanh`` clamps to ``±(1 - finfo.resolution)`` (1e-6 in float32, 1e-15 in float64),
      so an action never reaches the bounds;
    - ``log_prob(y)``: ``x = safe_atanh((y - c)/s)`` (clamped the same way), then
      ``sum_event(Normal(loc, scale).log_prob(x) - 2*(log 2 - x - softplus(-2x)) - log s)``;
    - ``deterministic_sample = c + s * safe_tanh(loc)``; ``entropy`` raises
      ``NotImplementedError``, ``mode`` ``RuntimeError`` and ``mean`` ``NotImplementedError``
      (no closed forms), as TorchRL.

    ``low``/``high`` given as Python numbers are decided statically (the affine map is left out
    when they are -1/1, as TorchRL); tensor bounds are always applied, with the ``tanh_loc``
    shift selected by ``torch.where`` (no data-dependent branch).
    """

    has_rsample = True
    num_params = 2
    action_dtype = "floating"

    def __init__(
        self,
        loc: torch.Tensor,
        scale: torch.Tensor | float | Callable[[torch.Tensor], torch.Tensor],
        upscale: torch.Tensor | Number = 5.0,
        low: torch.Tensor | Number = -1.0,
        high: torch.Tensor | Number = 1.0,
        event_dims: int | None = None,
        tanh_loc: bool = False,
        safe_tanh: bool = True,
    ):
        owner = type(self).__name__
        loc = check_tensor(owner, "loc", loc, floating=True)
        if isinstance(low, Number) and isinstance(high, Number):
            if not high > low:
                raise ValueError(f"{owner}: high={high} must be strictly greater than low={low}")
            self._affine = not (high == 1.0 and low == -1.0)
        else:
            self._affine = True
        self.low = constant_like(low, loc)
        self.high = constant_like(high, loc)
        self.upscale = upscale
        self.tanh_loc = tanh_loc
        self.safe_tanh = safe_tanh
        if event_dims is None:
            event_dims = min(1, loc.dim())
        self._event_dims = event_dims

        if tanh_loc:
            up = constant_like(upscale, loc)
            loc = torch.tanh(loc / up) * up
            if self._affine:
                shift = (self.high - self.low) / 2 + self.low
                if not (isinstance(low, Number) and isinstance(high, Number)):
                    trivial = (self.high == 1).all() & (self.low == -1).all()
                    shift = torch.where(trivial, torch.zeros_like(shift), shift)
                loc = loc + shift
        scale = _as_tensor_like(scale, loc)
        self.loc = loc
        self.scale = scale
        if self._affine:
            self._c = (self.high + self.low) / 2
            self._s = (self.high - self.low) / 2
        else:  # bounds -1/1: the affine map is left out, its constants are never used
            self._c = self._s = None
        if loc.shape == scale.shape:  # no broadcast needed
            shape = loc.shape
        else:
            shape = torch.broadcast_shapes(loc.shape, scale.shape)
        n = len(shape) - event_dims
        self.batch_shape = shape[:n]
        self.event_shape = shape[n:]

    # transforms ---------------------------------------------------------------------------
    def _tanh(self, x):
        return safe_tanh(x) if self.safe_tanh else torch.tanh(x)

    def _forward(self, x):
        y = self._tanh(x)
        if self._affine:
            y = self._c + self._s * y
        return y

    def _inverse(self, y):
        if self._affine:
            y = (y - self._c) / self._s
        return safe_atanh(y) if self.safe_tanh else atanh(y)

    def _log_abs_det_jacobian(self, x):
        ldj = 2 * (constant_like(_LOG_2, x) - x - softplus(-2 * x))
        if self._affine:
            ldj = ldj + torch.log(torch.abs(self._s))
        return ldj

    def _log_prob_pre(self, x):
        base = _sum_rightmost(_normal_log_prob(x, self.loc, self.scale, self._log_scale), self._event_dims)
        return base - _sum_rightmost(self._log_abs_det_jacobian(x), self._event_dims)

    # API ----------------------------------------------------------------------------------
    @property
    def min(self) -> torch.Tensor:
        return self.low

    @property
    def max(self) -> torch.Tensor:
        return self.high

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        value = self._check_value(value)
        return self._log_prob_pre(self._inverse(value))

    def _noise(self, sample_shape, noise):
        shape = self._extended_shape(sample_shape)
        if noise is None:
            return torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        return _check_noise(type(self).__name__, noise, shape)

    def rsample(self, sample_shape=torch.Size(), noise: torch.Tensor | None = None) -> torch.Tensor:
        x = self.loc + self._noise(sample_shape, noise) * self.scale
        return self._forward(x)

    def rsample_and_log_prob(self, sample_shape=torch.Size(), noise: torch.Tensor | None = None):
        """The action and the log-prob of the very pre-tanh draw (no inverse round trip)."""
        x = self.loc + self._noise(sample_shape, noise) * self.scale
        y = self._forward(x)
        return y, self._log_prob_pre(x)

    def rsample_log_prob(self, sample_shape=torch.Size(), noise: torch.Tensor | None = None) -> torch.Tensor:
        """The log-prob of :meth:`rsample_and_log_prob` alone (the action is not computed):
        what a Monte-Carlo entropy estimate needs."""
        return self._log_prob_pre(self.loc + self._noise(sample_shape, noise) * self.scale)

    def sample_and_log_prob(self, sample_shape=torch.Size(), noise: torch.Tensor | None = None):
        with torch.no_grad():
            x = self.loc + self._noise(sample_shape, noise) * self.scale
            y = self._forward(x)
        return y, self._log_prob_pre(x)

    @property
    def deterministic_sample(self) -> torch.Tensor:
        loc = self.loc.expand(self.batch_shape + self.event_shape)
        return self._forward(loc)

    @property
    def mode(self):
        raise RuntimeError(
            "TanhNormal has no analytical mode; use deterministic_sample (TorchRL's "
            "ExplorationType.DETERMINISTIC)."
        )

    @property
    def mean(self):
        raise NotImplementedError(
            "TanhNormal has no closed-form mean; estimate it as dist.sample((N,)).mean(0)."
        )

    def entropy(self):
        raise NotImplementedError(
            "TanhNormal has no closed-form entropy; use a Monte-Carlo estimate "
            "(-log_prob of rsample with explicit noise)."
        )


class Delta(Distribution):
    """TorchRL's ``Delta``: all mass on ``param``; for deterministic policies.

    ``log_prob(v)`` is ``+inf`` where ``|v - param| < atol + rtol*|param|`` over the whole
    event, ``-inf`` elsewhere. ``sample``/``rsample`` return ``param`` expanded to
    ``sample_shape`` (``noise`` is accepted and ignored). No entropy (``NotImplementedError``,
    as TorchRL). ``has_rsample`` is ``False`` as TorchRL (its ``rsample`` still returns param
    with gradients).
    """

    has_rsample = False
    num_params = 1
    action_dtype = "floating"

    def __init__(
        self,
        param: torch.Tensor,
        atol: float = 1e-6,
        rtol: float = 1e-6,
        batch_shape: Sequence[int] | None = None,
        event_shape: Sequence[int] | None = None,
    ):
        self.param = check_tensor(type(self).__name__, "param", param)
        self.atol = atol
        self.rtol = rtol
        batch_shape = torch.Size(batch_shape or ())
        event_shape = torch.Size(event_shape or ())
        if not len(batch_shape) and not len(event_shape):
            batch_shape = param.shape[:-1]
            event_shape = param.shape[-1:]
        self.batch_shape = batch_shape
        self.event_shape = event_shape

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        value = self._check_value(value)
        param = self.param.expand_as(value)
        tol = constant_like(self.atol, value) + constant_like(self.rtol, value) * torch.abs(param)
        is_equal = torch.abs(value - param) < tol
        for _ in self.event_shape:
            is_equal = is_equal.all(-1)
        inf = constant_like(float("inf"), value)
        return torch.where(is_equal, inf, -inf)

    def rsample(self, sample_shape=torch.Size(), noise: torch.Tensor | None = None) -> torch.Tensor:
        return self.param.expand(*torch.Size(sample_shape), *self.param.shape)

    def sample(self, sample_shape=torch.Size(), noise: torch.Tensor | None = None) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    @property
    def mean(self) -> torch.Tensor:
        return self.param

    @property
    def mode(self) -> torch.Tensor:
        return self.param

    @property
    def deterministic_sample(self) -> torch.Tensor:
        return self.param


def entropy_or_estimate(dist: Distribution, samples_mc: int = 1, noise: torch.Tensor | None = None) -> torch.Tensor:
    """``dist.entropy()`` where a closed form exists, else TorchRL's Monte-Carlo estimate
    ``-mean_s log p(x_s)`` over ``samples_mc`` reparameterised draws ``x_s`` (``noise``: their
    standard-normal draws ``[samples_mc, *batch, *event]``; TanhNormal scores each draw from its
    pre-tanh value, as TorchRL's ``rsample_and_log_prob``). ``[*batch]``."""
    try:
        return dist.entropy()
    except NotImplementedError:
        pass
    if hasattr(dist, "rsample_log_prob"):  # the draws' log-prob without the actions
        log_prob = dist.rsample_log_prob((samples_mc,), noise=noise)
    else:
        log_prob = dist.log_prob(dist.rsample((samples_mc,), noise=noise))
    return -log_prob.mean(0)
