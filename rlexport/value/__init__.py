"""Value estimators: tensor-only, TorchRL 0.14.1-compatible, exportable with a dynamic time axis.

* :mod:`rlexport.value.scan`: :func:`reverse_linear_recurrence`, the log-depth scan they all use.
* :mod:`rlexport.value.functional`: TorchRL's ``torchrl.objectives.value.functional`` functions.
* :mod:`rlexport.value.estimators`: the ``GAE``/``TD0Estimator``/``TD1Estimator``/
  ``TDLambdaEstimator``/``MultiAgentGAE``/``VTrace`` modules, ``ValueEstimators`` and ``default_value_kwargs``.
"""

from rlexport.value.estimators import (
    ESTIMATOR_CLASSES,
    GAE,
    MultiAgentGAE,
    TD0Estimator,
    TD1Estimator,
    TDLambdaEstimator,
    ValueEstimatorBase,
    ValueEstimators,
    VTrace,
    as_value_type,
    default_value_kwargs,
)
from rlexport.value.functional import (
    generalized_advantage_estimate,
    reward2go,
    td0_advantage_estimate,
    td0_return_estimate,
    td1_advantage_estimate,
    td1_return_estimate,
    td_lambda_advantage_estimate,
    td_lambda_return_estimate,
    vtrace_advantage_estimate,
)
from rlexport.value.scan import DEFAULT_MAX_STEPS, max_horizon, reverse_linear_recurrence

__all__ = [
    "GAE",
    "MultiAgentGAE",
    "TD0Estimator",
    "TD1Estimator",
    "TDLambdaEstimator",
    "VTrace",
    "ValueEstimatorBase",
    "ValueEstimators",
    "ESTIMATOR_CLASSES",
    "as_value_type",
    "default_value_kwargs",
    "generalized_advantage_estimate",
    "reward2go",
    "td0_advantage_estimate",
    "td0_return_estimate",
    "td1_advantage_estimate",
    "td1_return_estimate",
    "td_lambda_advantage_estimate",
    "td_lambda_return_estimate",
    "vtrace_advantage_estimate",
    "reverse_linear_recurrence",
    "DEFAULT_MAX_STEPS",
    "max_horizon",
]
