"""The on-disk format of an artifact, and nothing else: no tracing, no ONNX Runtime, no pickle.

``paths`` (sidecars, atomic staging), ``jsonio`` (strict JSON), ``dtypes`` (the one dtype
table), ``golden`` (the golden sample reader/writer), ``tolerance`` (the one tolerance rule),
``metadata`` (``X.json`` and ONNX ``metadata_props``), ``naming`` (the graph names of gradient
and train-step graphs).
"""

from rlexport.artifact.errors import ArtifactError, GoldenError
from rlexport.artifact.golden import GoldenCase, GoldenLimits, GoldenSample, read_golden, write_golden
from rlexport.artifact.paths import Staging, sidecar_paths
from rlexport.artifact.tolerance import DEFAULT_TOLERANCES, compare, tolerances

__all__ = [
    "ArtifactError",
    "GoldenError",
    "GoldenCase",
    "GoldenLimits",
    "GoldenSample",
    "read_golden",
    "write_golden",
    "Staging",
    "sidecar_paths",
    "DEFAULT_TOLERANCES",
    "compare",
    "tolerances",
]
