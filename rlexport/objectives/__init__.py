"""Tensor-only, TorchRL-compatible, exportable RL losses.

``loss(**keyword_tensors) -> tuple`` in ``loss.out_keys`` order (one selected output: the tensor,
as TorchRL); keyword names are TorchRL's keys
flattened with ``_`` (``next_reward``). See :class:`~rlexport.objectives.common.LossModule`.
"""

from .a2c import A2CLoss
from .common import ActorCriticLoss, LossModule
from .ppo import ClipPPOLoss, KLPENPPOLoss, PPOLoss
from .reinforce import ReinforceLoss
from .utils import clip_value_loss, distance_loss, kl_divergence, reduce, standardize
from rlexport.value import ValueEstimators, default_value_kwargs

__all__ = [
    "A2CLoss",
    "ActorCriticLoss",
    "ClipPPOLoss",
    "KLPENPPOLoss",
    "LossModule",
    "PPOLoss",
    "ReinforceLoss",
    "ValueEstimators",
    "clip_value_loss",
    "distance_loss",
    "kl_divergence",
    "reduce",
    "standardize",
]
