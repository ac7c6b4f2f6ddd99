"""Actor and critic modules: export-ready distributions and keyword-tensor wrappers.

See docs/design.md, "Actor and critic modules".
"""

from rlexport.modules.actors import (
    INTERACTION_TYPES,
    NormalParamExtractor,
    ProbabilisticActor,
    ValueOperator,
    biased_softplus,
    inv_softplus,
    mappings,
)
from rlexport.modules.composite import CompositeActor, CompositeDistribution, CompositeParamExtractor
from rlexport.modules.mlp import mlp
from rlexport.modules.distributions import (
    Categorical,
    Delta,
    Distribution,
    IndependentNormal,
    Normal,
    OneHotCategorical,
    TanhNormal,
    atanh,
    entropy_or_estimate,
    safe_atanh,
    safe_tanh,
    softplus,
)

__all__ = [
    "mlp",
    "Distribution",
    "Categorical",
    "OneHotCategorical",
    "IndependentNormal",
    "Normal",
    "TanhNormal",
    "Delta",
    "CompositeDistribution",
    "CompositeActor",
    "CompositeParamExtractor",
    "entropy_or_estimate",
    "NormalParamExtractor",
    "ProbabilisticActor",
    "ValueOperator",
    "INTERACTION_TYPES",
    "biased_softplus",
    "inv_softplus",
    "mappings",
    "atanh",
    "safe_atanh",
    "safe_tanh",
    "softplus",
]
