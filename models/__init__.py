"""Reference actor-critic presets; installed as ``rlexport.models``."""

from rlexport.models.presets import ActorCritic, Preset, get_preset, list_presets, register_preset

__all__ = ["ActorCritic", "Preset", "get_preset", "list_presets", "register_preset"]
