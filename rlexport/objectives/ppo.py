"""PPO losses (TorchRL 0.14.1's ``PPOLoss``, ``ClipPPOLoss``, ``KLPENPPOLoss``), tensor-only
and exportable.

Data path of every variant: advantage (input, or in-graph estimator) -> optional
standardisation -> current distribution -> ``log_weight = log pi(a|s) - sample_log_prob`` ->
surrogate objective (plain / clipped / KL-penalised) -> entropy bonus -> critic loss ->
reduction -> tuple in ``out_keys`` order.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from rlexport.inputs import InputError, check_tensor

from .common import ActorCriticLoss, const, pack_outputs
from .utils import explained_variance, has_analytic_kl, kl_divergence, maybe_standardize, mean_all, sample_and_log_prob

__all__ = ["PPOLoss", "ClipPPOLoss", "KLPENPPOLoss"]

_PPO_OPTIONS = [
    "actor_network", "critic_network", "actor", "critic", "entropy_bonus", "samples_mc_entropy",
    "entropy_coeff", "entropy_coef", "log_explained_variance", "critic_coeff", "critic_coef",
    "loss_critic_type", "normalize_advantage", "normalize_advantage_exclude_dims", "separate_losses",
    "advantage_key", "value_target_key", "value_key", "functional", "reduction", "clip_value", "device",
]


class PPOLoss(ActorCriticLoss):
    """PPO surrogate without a trust region: ``loss_objective = -exp(log_weight) * A``.

    Keyword inputs: the actor's ``in_keys``, ``action``, ``sample_log_prob`` (the behaviour
    policy's log-probability, batch-shaped); then ``advantage`` (+ ``value_target`` for the
    critic loss, ``state_value`` with ``clip_value``) or, to compute it in-graph,
    ``next_reward``, ``next_done``, ``next_terminated`` and the critic's ``in_keys`` with their
    ``next_`` twins. Optional: ``entropy_noise`` (``[samples_mc_entropy, *batch, *event]``
    standard-normal draws for a Monte-Carlo entropy) and the hyper-parameters
    (``entropy_coeff``, ``critic_coeff``, ``clip_value``) as 0-d tensors.

    Outputs (``out_keys``, TorchRL's order): ``loss_objective``, ``entropy``, ``loss_entropy``
    (with ``entropy_bonus``), ``loss_critic`` (with a critic), ``value_clip_fraction`` (with
    ``clip_value``). :meth:`select_out_keys` also offers ``kl_approx`` and
    ``explained_variance`` (TorchRL writes them into its TensorDict only).
    """

    def __init__(
        self,
        actor_network=None,
        critic_network=None,
        *,
        entropy_bonus: bool = True,
        samples_mc_entropy: int = 1,
        entropy_coeff: float | None = None,
        log_explained_variance: bool = True,
        critic_coeff: float | None = None,
        loss_critic_type: str = "smooth_l1",
        normalize_advantage: bool = False,
        normalize_advantage_exclude_dims: tuple[int, ...] = (),
        separate_losses: bool = False,
        advantage_key: str | None = None,
        value_target_key: str | None = None,
        value_key: str | None = None,
        functional: bool = True,
        actor=None,
        critic=None,
        reduction: str | None = None,
        clip_value: float | None = None,
        device=None,
        **kwargs,
    ):
        owner = type(self).__name__
        actor_network = actor if actor is not None else actor_network
        critic_network = critic if critic is not None else critic_network
        entropy_coeff = self._resolve_alias(owner, "entropy_coeff", entropy_coeff, "entropy_coef", kwargs, 0.01)
        critic_coeff = self._resolve_alias(owner, "critic_coeff", critic_coeff, "critic_coef", kwargs, None)
        for name in ("advantage_norm", "max_importance_ratio"):
            if kwargs.pop(name, None) is not None:
                raise NotImplementedError(f"{owner}: {name} is not supported")
        if kwargs.pop("delay_actor", False):
            raise NotImplementedError(f"{owner}: delay_actor=True is not supported")
        self._check_no_kwargs(owner, kwargs, self._options())
        # TorchRL: no coefficient -> 1.0 with a critic; 0 -> no critic loss.
        if critic_coeff is None and critic_network is not None:
            critic_coeff = 1.0
        elif critic_coeff == 0:
            critic_coeff = None
        if actor_network is None or (critic_network is None and critic_coeff not in (None, 0.0)):
            raise TypeError(f"{owner}: missing positional arguments actor_network or critic_network")
        super().__init__()
        self._setup_networks(owner, actor_network, critic_network, separate_losses)
        self.samples_mc_entropy = self._check_count(owner, "samples_mc_entropy", samples_mc_entropy)
        self.entropy_bonus = bool(entropy_bonus)
        self._entropy_options(owner, entropy_coeff)
        self.critic_coeff = self._check_float(owner, "critic_coeff", critic_coeff, allow_none=True)
        self.log_explained_variance = bool(log_explained_variance)
        self.normalize_advantage = bool(normalize_advantage)
        self.normalize_advantage_exclude_dims = tuple(normalize_advantage_exclude_dims)
        self.clip_value = self._check_float(owner, "clip_value", clip_value, allow_none=True, low=0.0)
        self._common_options(owner, loss_critic_type, reduction)
        self.functional = functional
        self.set_keys(advantage=advantage_key, value_target=value_target_key, value=value_key)

    @classmethod
    def _options(cls) -> list[str]:
        return list(_PPO_OPTIONS)

    @property
    def _has_critic(self) -> bool:
        return self.critic_coeff is not None and self.critic_coeff > 0

    # ---------------------------------------------------------------- keys
    def _required_inputs(self, given: Mapping) -> list[str]:
        keys = [*self._actor_in_keys, *self._action_inputs()]
        if not self._composite:  # composite: per-head or aggregated log-probs (one of the two, checked in forward)
            keys.append(self._k("sample_log_prob"))
        if given.get(self._k("advantage")) is None:
            if self.critic_network is None:
                # TorchRL: "Critic network is not specified, cannot compute advantage within forward."
                return keys + [self._k("advantage")]
            keys += self._estimator_inputs(current_critic_inputs=True)
            return keys
        if self._has_critic:
            keys += [*self._critic_in_keys, self._k("value_target")]
            if self.clip_value is not None:
                keys.append(self._k("value"))
        return keys

    def _optional_inputs(self, given: Mapping) -> list[str]:
        keys = [self._k("advantage"), self._k("value_target"), self._k("value")]
        if self._composite:
            keys += [*self._head_log_prob_inputs(), self._k("sample_log_prob")]
        if self.critic_network is not None:
            keys += self._estimator_inputs(current_critic_inputs=True)
        keys += [*self._entropy_noise_inputs(), *self._entropy_hyper_inputs()]
        if self._has_critic:
            keys.append("critic_coeff")
            if self.clip_value is not None:
                keys.append("clip_value")
        return keys + self._extra_optional_inputs()

    def _extra_optional_inputs(self) -> list[str]:
        return []

    def _critic_out_keys(self, with_diagnostics: bool) -> list[str]:
        if not self._has_critic:
            return []
        keys = ["loss_critic"]
        if self.clip_value is not None:
            keys.append("value_clip_fraction")
        if with_diagnostics and self.log_explained_variance:
            keys.append("explained_variance")
        return keys

    def _entropy_out_keys(self, with_heads: bool = False) -> list[str]:
        """``entropy``, ``loss_entropy`` (with ``entropy_bonus``); ``with_heads``: a composite
        actor's per-head entropies first (TorchRL's ``composite_entropy`` entry, TensorDict only)."""
        if not self.entropy_bonus:
            return []
        heads = self._composite_entropy_keys() if with_heads else []
        return [*heads, "entropy", "loss_entropy"]

    def _default_out_keys(self) -> list[str]:
        return ["loss_objective", *self._entropy_out_keys(), *self._critic_out_keys(False)]

    def _all_out_keys(self) -> list[str]:
        return ["loss_objective", "kl_approx", *self._entropy_out_keys(True), *self._critic_out_keys(True)]

    # ---------------------------------------------------------------- data path
    def _compute(self, inputs: dict[str, torch.Tensor], wanted: frozenset[str]) -> dict[str, torch.Tensor]:
        advantage, value_target, state_value, old_value = self._advantage(inputs)
        log_weight, advantage, dist = self._log_weight(inputs, advantage)
        # -(r * A) written as r * (-A): the same numbers, one autograd node fewer
        out = {"loss_objective": log_weight.exp() * -advantage}
        out.update(self._kl_approx(log_weight, wanted))
        out.update(self._entropy_terms(dist, inputs))
        out.update(self._critic_terms(inputs, state_value, value_target, old_value, wanted))
        return self._reduce(out)

    def _advantage(self, inputs: Mapping[str, torch.Tensor]):
        """``(advantage, value_target, state_value, old_state_value)``; standardised if asked."""
        advantage, value_target, state_value, old_value, _ = self._values_and_advantage(inputs, self._has_critic)
        if self.normalize_advantage:
            advantage = maybe_standardize(advantage, self.normalize_advantage_exclude_dims)
        return advantage, value_target, state_value, old_value

    def _log_weight(self, inputs: Mapping[str, torch.Tensor], advantage: torch.Tensor):
        """``log pi(a|s) - sample_log_prob`` and the advantage, both batch-shaped ``[*batch]``
        (the advantage comes in as ``[*batch, 1]``), and the distribution."""
        owner = type(self).__name__
        if self._composite:
            return self._composite_log_weight(inputs, advantage)
        key = self._k("sample_log_prob")
        prev_log_prob = self._stored_log_prob(inputs, key)
        dist = self._get_dist(inputs)
        log_prob = self._log_prob(dist, inputs)
        if tuple(prev_log_prob.shape) != tuple(log_prob.shape):
            raise ValueError(
                f"{owner}: {key!r} has shape {list(prev_log_prob.shape)} but the log-probability of "
                f"{self._k('action')!r} under the actor has shape {list(log_prob.shape)}; they must match"
            )
        return log_prob - prev_log_prob, self._batch_shaped_advantage(advantage, log_prob), dist

    def _stored_log_prob(self, inputs: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
        owner = type(self).__name__
        prev_log_prob = check_tensor(owner, key, inputs[key], floating=True)
        if prev_log_prob.requires_grad:
            raise RuntimeError(f"{owner}: input {key!r} requires grad; pass the stored (detached) log-probability")
        return prev_log_prob

    def _composite_log_weight(self, inputs: Mapping[str, torch.Tensor], advantage: torch.Tensor):
        """A composite actor's log-weight ``[*batch]``: ``sum_h (log pi_h - action_<h>_log_prob)``
        from the per-head behaviour log-probs (TorchRL's non-aggregated mode), or
        ``sum_h log pi_h - sample_log_prob`` from the aggregated one; exactly one form is given."""
        owner = type(self).__name__
        head_keys = self._head_log_prob_inputs()
        given = [k for k in head_keys if inputs.get(k) is not None]
        aggregated = self._k("sample_log_prob")
        if inputs.get(aggregated) is not None and given:
            raise InputError(
                f"{owner}: give either the per-head log-probs {head_keys} or the aggregated {aggregated!r}, not both"
            )
        if inputs.get(aggregated) is None and len(given) != len(head_keys):
            missing = [k for k in head_keys if k not in given]
            raise TypeError(
                f"{owner}: missing input {missing[0]!r}; a composite actor needs the per-head log-probs "
                f"{head_keys} (or the aggregated {aggregated!r})"
            )
        dist = self._get_dist(inputs)
        if given:
            log_probs = self._log_prob_heads(dist, inputs)
            log_weight = None
            for head, key in zip(self._heads, head_keys):
                term = log_probs[head] - self._stored_log_prob(inputs, key)
                if term.shape != log_probs[head].shape:
                    raise InputError(
                        f"{owner}: {key!r} has shape {list(inputs[key].shape)} but the log-probability of head "
                        f"{head!r} has shape {list(log_probs[head].shape)}; they must match"
                    )
                log_weight = term if log_weight is None else log_weight + term
        else:
            log_weight = self._log_prob(dist, inputs) - self._stored_log_prob(inputs, aggregated)
        return log_weight, self._batch_shaped_advantage(advantage, log_weight), dist

    @staticmethod
    def _kl_approx(log_weight: torch.Tensor, wanted: frozenset[str]) -> dict[str, torch.Tensor]:
        """TorchRL's ``kl_approx = mean(sample_log_prob - log pi(a|s))`` when it is wanted;
        ``-mean(log_weight)`` is the same number (negation is exact)."""
        if "kl_approx" not in wanted:
            return {}
        return {"kl_approx": -mean_all(log_weight.detach())}

    def _entropy_terms(self, dist, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if not self.entropy_bonus:
            return {}
        return self._entropy_outputs(dist, inputs)

    def _critic_terms(self, inputs, state_value, value_target, old_value, wanted) -> dict[str, torch.Tensor]:
        if not self._has_critic:
            return {}
        if self.separate_losses:
            value_target = value_target.detach()
            old_value = None if old_value is None else old_value.detach()
        loss_critic, clip_fraction = self._critic_loss(inputs, state_value, value_target, old_value)
        out = {"loss_critic": loss_critic}
        if clip_fraction is not None:
            out["value_clip_fraction"] = clip_fraction
        if self.log_explained_variance and "explained_variance" in wanted:
            out["explained_variance"] = explained_variance(value_target, state_value)
        return out


class ClipPPOLoss(PPOLoss):
    """Clipped PPO: ``loss_objective = -min(r * A, clip(r, 1 - eps_low, 1 + eps_high) * A)``.

    ``clip_epsilon``: a float (symmetric) or a ``(eps_low, eps_high)`` pair (the log-ratio is
    clamped to ``[log(1 - eps_low), log(1 + eps_high)]``, as TorchRL); held as registered 0-d
    buffers (``clip_epsilon``, or ``clip_epsilon_low``/``clip_epsilon_high``: schedule them in
    place, e.g. ``loss.clip_epsilon.fill_(0.1)``); ``clip_value=True`` clips the value loss with
    the symmetric ``clip_epsilon``. Keyword inputs as :class:`PPOLoss`, plus an
    optional ``clip_epsilon`` 0-d tensor (symmetric clipping).

    Outputs (``out_keys``, TorchRL's order): ``loss_objective``, ``clip_fraction``,
    [``entropy``, ``loss_entropy``], [``loss_critic``], [``value_clip_fraction``], ``ESS``
    (effective sample size of the ratios over dim 0, divided by the size of dim 0),
    ``kl_approx``, ``max_ratio``, ``mean_ratio``. Also available: ``explained_variance``.
    """

    def __init__(self, actor_network=None, critic_network=None, *, clip_epsilon: float | tuple[float, float] = 0.2,
                 clip_value: bool | float | None = None, **kwargs):
        owner = type(self).__name__
        asymmetric = isinstance(clip_epsilon, (tuple, list))
        if isinstance(clip_value, bool):
            if clip_value and asymmetric:
                raise ValueError(
                    f"{owner}: clip_value=True cannot infer the value-clip threshold from an asymmetric "
                    "clip_epsilon tuple; pass a float threshold, e.g. clip_value=0.2"
                )
            clip_value = clip_epsilon if clip_value else None
        super().__init__(actor_network, critic_network, clip_value=clip_value, **kwargs)
        # TorchRL: registered (schedulable) buffers, ``clip_epsilon`` or ``clip_epsilon_low`` /
        # ``clip_epsilon_high``; float64 here so that a float64 graph clips at the exact value
        self._asymmetric_clip = asymmetric
        if asymmetric:
            if len(clip_epsilon) != 2:
                raise ValueError(f"{owner}: clip_epsilon tuple must have length 2, got {tuple(clip_epsilon)}")
            low, high = (self._check_float(owner, "clip_epsilon", e) for e in clip_epsilon)
            if not (0 <= low < 1 and high >= 0):
                raise ValueError(f"{owner}: clip_epsilon=({low}, {high}) must satisfy 0 <= eps_low < 1 and eps_high >= 0")
            self.register_buffer("clip_epsilon_low", torch.tensor(low, dtype=torch.float64))
            self.register_buffer("clip_epsilon_high", torch.tensor(high, dtype=torch.float64))
        else:
            eps = self._check_float(owner, "clip_epsilon", clip_epsilon, low=0.0, high=1.0, high_open=True)
            self.register_buffer("clip_epsilon", torch.tensor(eps, dtype=torch.float64))

    _CLIP_BUFFERS = ("clip_epsilon", "clip_epsilon_low", "clip_epsilon_high")

    def __setattr__(self, name: str, value) -> None:
        # TorchRL's guard: scheduling the other flavour of threshold would create an attribute
        # the clipping never reads
        buffers = self.__dict__.get("_buffers")
        if name in self._CLIP_BUFFERS and buffers is not None and name not in buffers and any(
            n in buffers for n in self._CLIP_BUFFERS
        ):
            other = "'clip_epsilon_low' / 'clip_epsilon_high'" if self._asymmetric_clip else "'clip_epsilon'"
            kind = "an asymmetric clip_epsilon tuple" if self._asymmetric_clip else "a symmetric float clip_epsilon"
            raise AttributeError(f"Cannot schedule {name!r}: this {type(self).__name__} was built with {kind}; schedule {other} instead.")
        super().__setattr__(name, value)

    @classmethod
    def _options(cls) -> list[str]:
        return [*_PPO_OPTIONS, "clip_epsilon"]

    def _extra_optional_inputs(self) -> list[str]:
        return [] if self._asymmetric_clip else ["clip_epsilon"]

    def _default_out_keys(self) -> list[str]:
        return [
            "loss_objective", "clip_fraction", *self._entropy_out_keys(), *self._critic_out_keys(False),
            "ESS", "kl_approx", "max_ratio", "mean_ratio",
        ]

    def _all_out_keys(self) -> list[str]:
        return [
            "loss_objective", "clip_fraction", "kl_approx", *self._entropy_out_keys(True),
            *self._critic_out_keys(True), "ESS", "max_ratio", "mean_ratio",
        ]

    def _clip_bounds(self, inputs, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log(1 - eps_low), log(1 + eps_high))`` as tensors of ``like``'s dtype."""
        if not self._asymmetric_clip:
            eps = self._hyper("clip_epsilon", inputs, like)
            return (-eps).log1p(), eps.log1p()
        return (-const(self.clip_epsilon_low, like)).log1p(), const(self.clip_epsilon_high, like).log1p()

    def _compute(self, inputs: dict[str, torch.Tensor], wanted: frozenset[str]) -> dict[str, torch.Tensor]:
        advantage, value_target, state_value, old_value = self._advantage(inputs)
        log_weight, advantage, dist = self._log_weight(inputs, advantage)

        ratio = log_weight.exp()
        log_weight_clip = log_weight.clamp(*self._clip_bounds(inputs, log_weight))
        clip_fraction = mean_all((log_weight_clip != log_weight).to(log_weight.dtype))
        # -min(r * A, clip(r) * A) written as max(r * (-A), clip(r) * (-A)): the same numbers
        # (negation is exact), one autograd node fewer
        neg_advantage = -advantage
        loss_objective = torch.maximum(ratio * neg_advantage, log_weight_clip.exp() * neg_advantage)
        out = {"loss_objective": loss_objective, "clip_fraction": clip_fraction}
        out.update(self._kl_approx(log_weight, wanted))
        out.update(self._entropy_terms(dist, inputs))
        out.update(self._critic_terms(inputs, state_value, value_target, old_value, wanted))
        out.update(self._ratio_diagnostics(log_weight.detach(), wanted, ratio.detach()))
        return self._reduce(out)

    @staticmethod
    def _ratio_diagnostics(log_weight: torch.Tensor, wanted: frozenset[str], ratio: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``ESS``, ``max_ratio``, ``mean_ratio`` of the detached ``log_weight`` (``ratio``: its
        ``exp`` when already computed)."""
        out = {}
        if "ESS" in wanted:
            # TorchRL's exp(2 logsumexp(lw) - logsumexp(2 lw)) = (sum w)^2 / sum w^2, computed
            # with w = exp(lw - max lw) in (0, 1] (no overflow; two reductions instead of two
            # logsumexp); the same number within float rounding
            w = (log_weight - log_weight.amax(0)).exp()
            total = w.sum(0)
            out["ESS"] = total * total / (w * w).sum(0) / log_weight.shape[0]
        if "max_ratio" in wanted or "mean_ratio" in wanted:
            if ratio is None:
                ratio = log_weight.exp()
            out["max_ratio"] = ratio.max()
            out["mean_ratio"] = mean_all(ratio)
        return out


class KLPENPPOLoss(PPOLoss):
    """KL-penalised PPO: ``loss_objective = -(r * A - beta * KL(pi_old || pi))``.

    ``pi_old`` is built from the distribution parameters stored in the batch (the actor's
    distribution-parameter keys, e.g. ``logits`` or ``loc``/``scale``: required inputs). KL is in
    closed form where one exists (Categorical, IndependentNormal), else a Monte-Carlo estimate
    from ``samples_mc_kl`` draws of ``pi_old`` (noise: the optional ``kl_noise`` input).

    Pure forward: ``beta`` is an optional 0-d input (default: the module's ``beta`` buffer) and
    ``beta_next`` an output: ``beta * increment`` if ``mean(KL) > 1.5 * dtarg``, ``beta *
    decrement`` if ``mean(KL) < dtarg / 1.5``, else ``beta``. TorchRL updates its buffer inside
    forward; here :meth:`forward_and_update` (eager) or ``update_beta(beta_next)`` does it.

    Outputs (``out_keys``): ``loss_objective``, ``kl`` (per sample, ``[*batch, 1]``, not reduced,
    as TorchRL), [``entropy``, ``loss_entropy``], [``loss_critic``], [``value_clip_fraction``],
    ``beta_next``. Also available: ``kl_approx``, ``explained_variance``.
    """

    KL_NOISE = "kl_noise"

    def __init__(self, actor_network=None, critic_network=None, *, dtarg: float = 0.01, beta: float = 1.0,
                 increment: float = 2, decrement: float = 0.5, samples_mc_kl: int = 1, **kwargs):
        owner = type(self).__name__
        super().__init__(actor_network, critic_network, **kwargs)
        self.dtarg = self._check_float(owner, "dtarg", dtarg, low=0.0, low_open=True)
        increment = self._check_float(owner, "increment", increment)
        decrement = self._check_float(owner, "decrement", decrement, low=0.0, low_open=True)
        if increment < 1.0:
            raise ValueError(f"{owner}: increment should be >= 1.0, got {increment}")
        if decrement > 1.0:
            raise ValueError(f"{owner}: decrement should be <= 1.0, got {decrement}")
        self.increment, self.decrement = increment, decrement
        self.samples_mc_kl = self._check_count(owner, "samples_mc_kl", samples_mc_kl)
        self._beta_init = self._check_float(owner, "beta", beta, low=0.0)
        self.register_buffer("beta", torch.tensor(self._beta_init, dtype=torch.float64))

    @classmethod
    def _options(cls) -> list[str]:
        return [*_PPO_OPTIONS, "dtarg", "beta", "increment", "decrement", "samples_mc_kl"]

    @property
    def _dist_param_keys(self) -> list[str]:
        actor = self.actor_network
        keys = getattr(actor, "dist_param_keys", None)
        if keys is None:
            keys = getattr(actor, "out_keys")
        return [str(k) for k in keys]

    def _required_inputs(self, given: Mapping) -> list[str]:
        return super()._required_inputs(given) + self._dist_param_keys

    def _extra_optional_inputs(self) -> list[str]:
        if self._composite:
            return ["beta", *(f"{self.KL_NOISE}_{h}" for h in self._heads)]
        return ["beta", self.KL_NOISE]

    @property
    def in_keys(self) -> list[str]:
        """The base loss's ``in_keys`` and ``beta``: forward reads beta as an input (``beta_next``
        out), like TorchRL's KLPENPPOLoss reads its ``beta`` state."""
        return [*super().in_keys, "beta"]

    def _default_out_keys(self) -> list[str]:
        return ["loss_objective", "kl", *self._entropy_out_keys(), *self._critic_out_keys(False), "beta_next"]

    def _all_out_keys(self) -> list[str]:
        return [
            "loss_objective", "kl", "kl_approx", *self._entropy_out_keys(True), *self._critic_out_keys(True), "beta_next",
        ]

    def _previous_dist(self, inputs: Mapping[str, torch.Tensor]):
        actor = self.actor_network
        params = {k: inputs[k].detach() for k in self._dist_param_keys}
        if hasattr(actor, "build_dist"):
            return actor.build_dist(params)
        return actor.distribution_class(**params, **dict(getattr(actor, "distribution_kwargs", None) or {}))

    def _kl(self, previous, current, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``KL(pi_old || pi)`` ``[*batch]``: closed form, else a Monte-Carlo estimate from
        ``samples_mc_kl`` draws of ``pi_old``; a composite actor's is the sum of its heads' KLs
        (``kl_noise_<head>`` per head)."""
        if self._composite:
            total = None
            for h in self._heads:
                kl = self._head_kl(previous[h], current[h], inputs.get(f"{self.KL_NOISE}_{h}"))
                total = kl if total is None else total + kl
            return total
        return self._head_kl(previous, current, inputs.get(self.KL_NOISE))

    def _head_kl(self, previous, current, noise) -> torch.Tensor:
        if has_analytic_kl(previous, current):
            return kl_divergence(previous, current)
        x, previous_log_prob = sample_and_log_prob(previous, (self.samples_mc_kl,), noise, reparameterize=False)
        return (previous_log_prob - current.log_prob(x)).mean(0)

    def _compute(self, inputs: dict[str, torch.Tensor], wanted: frozenset[str]) -> dict[str, torch.Tensor]:
        previous_dist = self._previous_dist(inputs)
        advantage, value_target, state_value, old_value = self._advantage(inputs)
        log_weight, advantage, dist = self._log_weight(inputs, advantage)

        kl = self._kl(previous_dist, dist, inputs)
        beta = self._hyper("beta", inputs, kl)
        # -(r * A - beta * KL) written as beta * KL - r * A: the same numbers, one node fewer
        out = {"loss_objective": beta * kl - log_weight.exp() * advantage, "kl": kl.detach().unsqueeze(-1)}
        out.update(self._kl_approx(log_weight, wanted))
        out.update(self._entropy_terms(dist, inputs))
        out.update(self._critic_terms(inputs, state_value, value_target, old_value, wanted))
        out["beta_next"] = self._beta_next(beta.detach(), mean_all(kl.detach()))
        return self._reduce(out)

    def _beta_next(self, beta: torch.Tensor, kl_mean: torch.Tensor) -> torch.Tensor:
        dtarg = const(self.dtarg, kl_mean)
        upper = dtarg * const(1.5, kl_mean)
        lower = dtarg / const(1.5, kl_mean)
        return torch.where(
            kl_mean > upper,
            beta * const(self.increment, beta),
            torch.where(kl_mean < lower, beta * const(self.decrement, beta), beta),
        )

    # ---------------------------------------------------------------- eager state
    @torch.no_grad()
    def update_beta(self, beta_next: torch.Tensor) -> None:
        """Store ``beta_next`` as the module's ``beta`` (eager; outside any traced graph)."""
        self.beta.copy_(beta_next.detach().to(self.beta.dtype))

    def forward_and_update(self, **kwargs: torch.Tensor):
        """``forward`` then :meth:`update_beta` with its ``beta_next``: TorchRL's stateful behaviour."""
        kwargs = self._resolve_aliases(kwargs)
        plan = self._call_plan(kwargs)
        inputs = self._check_inputs(kwargs, plan)
        self._check_layout(inputs)
        outputs = self._compute(inputs, plan.wanted | {"beta_next"})
        self.update_beta(outputs["beta_next"])
        return pack_outputs(outputs, plan.out_keys)

    def reset(self) -> None:
        with torch.no_grad():
            self.beta.fill_(self._beta_init)
