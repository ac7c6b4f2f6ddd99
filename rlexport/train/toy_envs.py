"""Small Gymnasium environments with composite action spaces, registered as ``rlexport/*``.

CartPole whose action has two heads: ``push`` (``Discrete(2)``, the direction, as CartPole's
action) and ``gain`` (how hard: the force is ``force_mag * gain``). PPO learns to balance it as
quickly as CartPole (the push decides), so a short run shows a rising return against a random
policy; the gain head is a second, independent head the policy must also produce.

=====================================  ===========================================================
id                                     action space
=====================================  ===========================================================
``rlexport/MultiHeadCartPole-v0``      ``Dict(push=Discrete(2), gain=Box(0.5, 1.5, (1,)))``
``rlexport/TupleCartPole-v0``          ``Tuple(Discrete(2), Box(0.5, 1.5, (1,)))``
``rlexport/MultiDiscreteCartPole-v0``  ``MultiDiscrete([2, 3])`` (gain 0.5, 1.0 or 1.5)
=====================================  ===========================================================

Episodes end as CartPole-v1's (500 steps).
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.envs.registration import register, registry

__all__ = ["MultiHeadCartPole", "TOY_ENV_IDS"]

_GAIN_LOW, _GAIN_HIGH = 0.5, 1.5
_GAIN_LEVELS = (0.5, 1.0, 1.5)


class MultiHeadCartPole(CartPoleEnv):
    """CartPole with a composite action: ``layout`` ``"dict"``, ``"tuple"`` or ``"multidiscrete"``."""

    def __init__(self, layout: str = "dict", render_mode: str | None = None):
        super().__init__(render_mode=render_mode)
        self.layout = layout
        self._base_force = self.force_mag
        self._push_space = spaces.Discrete(2)
        gain = spaces.Box(_GAIN_LOW, _GAIN_HIGH, (1,), np.float32)
        if layout == "dict":
            self.action_space = spaces.Dict({"push": spaces.Discrete(2), "gain": gain})
        elif layout == "tuple":
            self.action_space = spaces.Tuple((spaces.Discrete(2), gain))
        elif layout == "multidiscrete":
            self.action_space = spaces.MultiDiscrete([2, len(_GAIN_LEVELS)])
        else:
            raise ValueError(f"MultiHeadCartPole: layout={layout!r}; choose 'dict', 'tuple' or 'multidiscrete'")

    def step(self, action):
        if self.layout == "dict":
            push, gain = action["push"], float(np.asarray(action["gain"]).reshape(-1)[0])
        elif self.layout == "tuple":
            push, gain = action[0], float(np.asarray(action[1]).reshape(-1)[0])
        else:
            push, gain = action[0], _GAIN_LEVELS[int(action[1])]
        # CartPole's step checks its action against ``action_space``: the push head's space
        # stands in for the composite one during the call
        composite = self.action_space
        self.force_mag = self._base_force * float(np.clip(gain, _GAIN_LOW, _GAIN_HIGH))
        self.action_space = self._push_space
        try:
            return super().step(int(push))
        finally:
            self.force_mag = self._base_force
            self.action_space = composite


TOY_ENV_IDS = {
    "rlexport/MultiHeadCartPole-v0": "dict",
    "rlexport/TupleCartPole-v0": "tuple",
    "rlexport/MultiDiscreteCartPole-v0": "multidiscrete",
}

for _id, _layout in TOY_ENV_IDS.items():
    if _id not in registry:
        register(id=_id, entry_point="rlexport.train.toy_envs:MultiHeadCartPole", kwargs={"layout": _layout},
                 max_episode_steps=500, reward_threshold=475.0)
