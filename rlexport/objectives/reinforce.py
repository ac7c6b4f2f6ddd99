"""REINFORCE loss with a value baseline (TorchRL 0.14.1's ``ReinforceLoss``)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .common import ActorCriticLoss

__all__ = ["ReinforceLoss"]

_OPTIONS = [
    "actor_network", "critic_network", "actor", "critic", "delay_value", "loss_critic_type", "advantage_key",
    "value_target_key", "separate_losses", "functional", "reduction", "clip_value",
]


class ReinforceLoss(ActorCriticLoss):
    """``loss_actor = -log pi(a|s) * stopgrad(A)``, ``loss_value = d(V(s), value_target)``.

    Keyword inputs as :class:`~rlexport.objectives.A2CLoss` (no entropy). Outputs:
    ``loss_actor``, ``loss_value``; also available: ``value_clip_fraction`` (with
    ``clip_value``).

    ``delay_value=True`` (TorchRL): the in-graph estimator takes the next value from a target
    copy of the critic, made at construction (``target_critic_network``: its parameters are
    buffers, so exported graphs read them like any other buffer and no gradient reaches them);
    :meth:`update_target_params` moves it towards the critic (TorchRL's ``SoftUpdate`` /
    ``HardUpdate`` step), eagerly, outside any forward pass.
    """

    def __init__(
        self,
        actor_network=None,
        critic_network=None,
        *,
        delay_value: bool = False,
        loss_critic_type: str = "smooth_l1",
        advantage_key: str | None = None,
        value_target_key: str | None = None,
        separate_losses: bool = False,
        functional: bool = True,
        actor=None,
        critic=None,
        reduction: str | None = None,
        clip_value: float | None = None,
        **kwargs,
    ):
        owner = type(self).__name__
        self._check_no_kwargs(owner, kwargs, _OPTIONS)
        if delay_value and not functional:
            raise RuntimeError(
                f"{owner}: delay_value and ~functional are incompatible, as delayed value currently relies on functional calls."
            )
        actor_network = actor if actor is not None else actor_network
        critic_network = critic if critic is not None else critic_network
        if actor_network is None or critic_network is None:
            raise TypeError(f"{owner}: missing positional arguments actor_network or critic_network")
        if clip_value is not None and (isinstance(clip_value, bool) or not isinstance(clip_value, (float, torch.Tensor))):
            raise ValueError(f"{owner}: clip_value must be a float or a scalar tensor, got {clip_value!r}")
        super().__init__()
        self._setup_networks(owner, actor_network, critic_network, separate_losses)
        self.delay_value = bool(delay_value)
        if self.delay_value:
            self._make_target_critic()
        self.clip_value = self._check_float(owner, "clip_value", clip_value, allow_none=True, low=0.0)
        self._common_options(owner, loss_critic_type, reduction)
        self.functional = functional
        self.set_keys(advantage=advantage_key, value_target=value_target_key)

    def _required_inputs(self, given: Mapping) -> list[str]:
        keys = [*self._actor_in_keys, *self._action_inputs(), *self._critic_in_keys]
        if given.get(self._k("advantage")) is None:
            return keys + self._estimator_inputs(current_critic_inputs=False)
        keys.append(self._k("value_target"))
        if self.clip_value is not None:
            keys.append(self._k("value"))
        return keys

    def _optional_inputs(self, given: Mapping) -> list[str]:
        keys = [self._k("advantage"), self._k("value_target"), self._k("value")]
        keys += self._estimator_inputs(current_critic_inputs=False)
        return keys + (["clip_value"] if self.clip_value is not None else [])

    def _default_out_keys(self) -> list[str]:
        return ["loss_actor", "loss_value"]

    def _all_out_keys(self) -> list[str]:
        return ["loss_actor", "loss_value"] + (["value_clip_fraction"] if self.clip_value is not None else [])

    def _compute(self, inputs: dict[str, torch.Tensor], wanted: frozenset[str]) -> dict[str, torch.Tensor]:
        advantage, value_target, state_value, old_value, _ = self._values_and_advantage(inputs, True)
        dist = self._get_dist(inputs)
        log_prob = self._log_prob(dist, inputs)
        if log_prob.shape == advantage.shape[:-1]:
            log_prob = log_prob.unsqueeze(-1)
        self._check_advantage(advantage, log_prob)
        out = {"loss_actor": -log_prob * advantage.detach()}
        loss_value, clip_fraction = self._critic_loss(inputs, state_value, value_target, old_value, coeff_name=None)
        out["loss_value"] = loss_value
        if clip_fraction is not None:
            out["value_clip_fraction"] = clip_fraction
        return self._reduce(out, trailing_dim=frozenset({"loss_actor", "loss_value"}))
