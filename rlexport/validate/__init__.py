"""Validation, above export and runtime (nothing below imports it).

- :func:`validate`: an artifact against its golden sample on every backend that can run it, or
  a module against itself in float64 across eager, exported and ONNX Runtime backends;
- :func:`validate_train_step`: a train-step artifact from its golden sample alone, or K steps in
  ONNX Runtime against eager ``torch.optim``.
"""

from rlexport.artifact.tolerance import DEFAULT_TOLERANCES, compare
from rlexport.runtime.check import ParityReport, ParityRow
from rlexport.validate.parity import MODULE_BACKENDS, REFERENCE, SLOW_BACKENDS, validate
from rlexport.validate.train_step import TrainStepReport, validate_train_step

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
