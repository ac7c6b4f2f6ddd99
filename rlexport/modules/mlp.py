"""CleanRL's PPO network: ``Linear-Tanh-...-Linear`` with orthogonal weights and zero biases.

The one builder of the model presets (``rlexport.models.presets``) and of ``rlexport train``'s
agent (``rlexport.train.agent``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["mlp"]


def _layer(n_in: int, n_out: int, gain: float, generator: torch.Generator | None) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(layer.weight, gain, generator=generator)
    nn.init.zeros_(layer.bias)
    return layer


def mlp(
    n_in: int,
    n_out: int,
    *,
    hidden: Sequence[int] = (64, 64),
    head_gain: float,
    generator: torch.Generator | None = None,
) -> nn.Sequential:
    """``[*batch, n_in] -> [*batch, n_out]``: a tanh layer per entry of ``hidden``, then a linear head.

    Hidden weights are orthogonal with gain ``sqrt(2)``, the head's with ``head_gain`` (CleanRL:
    0.01 for an actor, 1.0 for a critic); biases are zero. Weights are drawn from ``generator``
    (torch's global generator when ``None``).
    """
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layers += [_layer(width, h, math.sqrt(2.0), generator), nn.Tanh()]
        width = h
    layers.append(_layer(width, n_out, head_gain, generator))
    return nn.Sequential(*layers)
