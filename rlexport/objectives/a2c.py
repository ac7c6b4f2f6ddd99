"""A2C loss (TorchRL 0.14.1's ``A2CLoss``), tensor-only and exportable."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .common import ActorCriticLoss
from .utils import maybe_standardize

__all__ = ["A2CLoss"]

_OPTIONS = [
    "actor_network", "critic_network", "actor", "critic", "entropy_bonus", "samples_mc_entropy",
    "entropy_coeff", "entropy_coef", "critic_coeff", "critic_coef", "loss_critic_type",
    "separate_losses", "advantage_key", "value_target_key", "functional", "reduction", "clip_value",
    "normalize_advantage", "normalize_advantage_exclude_dims",
]


class A2CLoss(ActorCriticLoss):
    """Advantage actor-critic loss.

    ``loss_objective = -log pi(a|s) * A``, ``loss_critic = critic_coeff * d(V(s), value_target)``
    (``d``: ``loss_critic_type``; with ``clip_value`` the worse of the clipped and unclipped
    distances), ``loss_entropy = -entropy_coeff * H[pi(.|s)]``; each ``loss_*`` reduced by
    ``reduction``.

    Keyword inputs: the actor's ``in_keys``, ``action``; then either ``advantage`` (+
    ``value_target`` for the critic loss, ``state_value`` with ``clip_value``) or, to compute the
    advantage in-graph with :attr:`value_estimator`, ``next_reward``, ``next_done``,
    ``next_terminated`` and the critic's ``in_keys`` with their ``next_`` twins. Optional:
    ``entropy_noise`` (standard-normal draws ``[samples_mc_entropy, *batch, *event]`` for a
    Monte-Carlo entropy), and the hyper-parameters ``entropy_coeff``, ``critic_coeff``,
    ``clip_value`` as 0-d tensors.

    ``normalize_advantage`` (+ ``normalize_advantage_exclude_dims``) is an rlexport extension
    (standardise the advantage as :class:`~rlexport.objectives.PPOLoss` does); TorchRL 0.14.1's
    A2C has no such option (its ``**kwargs`` swallow it).

    Outputs (``out_keys``, TorchRL's order): ``loss_objective``, ``loss_critic`` (unless
    ``critic_coeff=None``), ``entropy`` and ``loss_entropy`` (if ``entropy_bonus``). Also
    available through :meth:`select_out_keys`: ``value_clip_fraction`` (with ``clip_value``).
    """

    def __init__(
        self,
        actor_network=None,
        critic_network=None,
        *,
        entropy_bonus: bool = True,
        samples_mc_entropy: int = 1,
        entropy_coeff: float | None = None,
        critic_coeff: float | None = 1.0,
        loss_critic_type: str = "smooth_l1",
        separate_losses: bool = False,
        advantage_key: str | None = None,
        value_target_key: str | None = None,
        functional: bool = True,
        actor=None,
        critic=None,
        reduction: str | None = None,
        clip_value: float | None = None,
        normalize_advantage: bool = False,
        normalize_advantage_exclude_dims: tuple[int, ...] = (),
        **kwargs,
    ):
        owner = type(self).__name__
        entropy_coeff = self._resolve_alias(owner, "entropy_coeff", entropy_coeff, "entropy_coef", kwargs, 0.01)
        if "critic_coef" in kwargs:
            critic_coeff = kwargs.pop("critic_coef")
        if kwargs.pop("advantage_norm", None) is not None:
            raise NotImplementedError(f"{owner}: advantage_norm (a stateful ValueNorm) is not supported")
        self._check_no_kwargs(owner, kwargs, _OPTIONS)
        actor_network = actor if actor is not None else actor_network
        critic_network = critic if critic is not None else critic_network
        if actor_network is None or critic_network is None:
            raise TypeError(f"{owner}: missing positional arguments actor_network or critic_network")
        super().__init__()
        self._setup_networks(owner, actor_network, critic_network, separate_losses)
        self.samples_mc_entropy = self._check_count(owner, "samples_mc_entropy", samples_mc_entropy)
        self._entropy_options(owner, entropy_coeff)
        self.critic_coeff = self._check_float(owner, "critic_coeff", critic_coeff, allow_none=True)
        self.entropy_bonus = bool(entropy_bonus and (self.entropy_coeff or self._entropy_coeff_map))
        self.clip_value = self._check_float(owner, "clip_value", clip_value, allow_none=True, low=0.0)
        self._common_options(owner, loss_critic_type, reduction)
        self.functional = functional
        # rlexport extension (TorchRL 0.14.1's A2CLoss has no such option and silently ignores
        # unknown keywords): standardise the advantage as PPOLoss does.
        self.normalize_advantage = bool(normalize_advantage)
        self.normalize_advantage_exclude_dims = tuple(normalize_advantage_exclude_dims)
        self.set_keys(advantage=advantage_key, value_target=value_target_key)

    # ---------------------------------------------------------------- keys
    def _required_inputs(self, given: Mapping) -> list[str]:
        keys = [*self._actor_in_keys, *self._action_inputs()]
        if given.get(self._k("advantage")) is None:
            keys += self._estimator_inputs(current_critic_inputs=True)
            return keys
        if self.critic_coeff is not None:
            keys += [*self._critic_in_keys, self._k("value_target")]
            if self.clip_value is not None:
                keys.append(self._k("value"))
        return keys

    def _optional_inputs(self, given: Mapping) -> list[str]:
        keys = [self._k("advantage"), self._k("value_target"), self._k("value")]
        keys += self._estimator_inputs(current_critic_inputs=True)
        keys += [*self._entropy_noise_inputs(), *self._entropy_hyper_inputs(), "critic_coeff"]
        if self.clip_value is not None:
            keys.append("clip_value")
        return keys

    def _default_out_keys(self) -> list[str]:
        keys = ["loss_objective"]
        if self.critic_coeff is not None:
            keys.append("loss_critic")
        if self.entropy_bonus:
            keys += ["entropy", "loss_entropy"]
        return keys

    def _all_out_keys(self) -> list[str]:
        keys = ["loss_objective"]
        if self.entropy_bonus:
            keys += [*self._composite_entropy_keys(), "entropy", "loss_entropy"]
        if self.critic_coeff is not None:
            keys.append("loss_critic")
            if self.clip_value is not None:
                keys.append("value_clip_fraction")
        return keys

    # ---------------------------------------------------------------- data path
    def _compute(self, inputs: dict[str, torch.Tensor], wanted: frozenset[str]) -> dict[str, torch.Tensor]:
        has_critic = self.critic_coeff is not None
        advantage, value_target, state_value, old_value, _ = self._values_and_advantage(inputs, has_critic)
        if self.normalize_advantage:
            advantage = maybe_standardize(advantage, self.normalize_advantage_exclude_dims)

        dist = self._get_dist(inputs)
        log_prob = self._log_prob(dist, inputs)  # [*batch]: actor terms are batch-shaped
        advantage = self._batch_shaped_advantage(advantage, log_prob)
        # -(log_prob * A) written as log_prob * (-A): the same numbers, one autograd node fewer
        out = {"loss_objective": log_prob * -advantage}

        if self.entropy_bonus:
            out.update(self._entropy_outputs(dist, inputs))
        if has_critic:
            loss_critic, clip_fraction = self._critic_loss(inputs, state_value, value_target, old_value)
            out["loss_critic"] = loss_critic
            if clip_fraction is not None:
                out["value_clip_fraction"] = clip_fraction
        return self._reduce(out)
