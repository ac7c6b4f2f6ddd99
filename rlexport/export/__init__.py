"""Exporters: ``torch.export`` (.pt2), ONNX, TorchScript (deprecated upstream), AOTInductor, and
gradient / train-step graphs — one pipeline.

Every exporter takes ``(module, example, path, *, dynamic=True, dtype=None, ...)`` where
``example`` maps keyword name -> tensor (what ``module(**example)`` takes) and runs the same
steps: ``plan`` (example casting, the one dynamic-dims rule, the one golden-case rule) ->
``capture`` (one ``make_fx`` trace for ONNX; ``torch.export`` for ``.pt2``) -> conversion (``onnx``,
``program``, ``torchscript``, ``aoti``) -> ``write`` (stage the model, ``X.json`` and
``X.golden/``, verify against the golden sample, commit atomically).
"""

from rlexport.artifact.errors import ArtifactError
from rlexport.artifact.golden import read_golden, write_golden
from rlexport.artifact.tolerance import DEFAULT_TOLERANCES
from rlexport.export.aoti import export_aoti
from rlexport.export.capture import positional_adapter
from rlexport.export.grad import export_grad
from rlexport.export.onnx import export_onnx
from rlexport.export.plan import ExportError, infer_dynamic_dims, resolve_dynamic_dims
from rlexport.export.program import export_program
from rlexport.export.torchscript import export_torchscript
from rlexport.export.train_step import export_train_step
from rlexport.runtime.load import Artifact, describe, load_artifact

__all__ = [
    "export_program",
    "export_onnx",
    "export_torchscript",
    "export_aoti",
    "export_grad",
    "export_train_step",
    "read_golden",
    "write_golden",
    "load_artifact",
    "describe",
    "Artifact",
    "ArtifactError",
    "ExportError",
    "DEFAULT_TOLERANCES",
    "infer_dynamic_dims",
    "resolve_dynamic_dims",
    "positional_adapter",
]


def __getattr__(name: str):
    if name == "validate_train_step":
        raise ImportError("validate_train_step moved to the validation layer: from rlexport.validate import validate_train_step")
    raise AttributeError(f"module 'rlexport.export' has no attribute {name!r}")
