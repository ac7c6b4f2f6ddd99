"""``rlexport.parity`` is the validation layer's public name: see ``rlexport.validate``."""

from rlexport.validate import (
    DEFAULT_TOLERANCES,
    MODULE_BACKENDS,
    REFERENCE,
    SLOW_BACKENDS,
    ParityReport,
    ParityRow,
    TrainStepReport,
    compare,
    validate,
    validate_train_step,
)

__all__ = [
    "DEFAULT_TOLERANCES",
    "MODULE_BACKENDS",
    "REFERENCE",
    "SLOW_BACKENDS",
    "ParityReport",
    "ParityRow",
    "TrainStepReport",
    "compare",
    "validate",
    "validate_train_step",
]
