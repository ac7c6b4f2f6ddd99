"""Reference actor-critic presets; installed as ``rlexport.models``."""
