"""Exporters: ``torch.export`` (.pt2), ONNX, TorchScript (deprecated upstream), AOTInductor.

Every exporter takes ``(module, example, path, *, dynamic=True, dtype=None, output_names=None)``
where ``example`` maps keyword name -> tensor (what ``module(**example)`` takes), writes the
artifact atomically with ``X.json`` and ``X.golden/`` beside it, and verifies it at other batch
sizes and horizons first. See ``rlexport.export.common`` for how dynamic dims are declared.
"""

from rlexport.export.aoti import export_aoti
from rlexport.export.common import DEFAULT_TOLERANCES, ExportError, infer_dynamic_dims, positional_adapter, resolve_dynamic_dims
from rlexport.export.golden import read_golden, write_golden
from rlexport.export.onnx import export_onnx
from rlexport.export.program import export_program
from rlexport.export.torchscript import export_torchscript
from rlexport.export.grad import export_grad
from rlexport.export.train_step import export_train_step, validate_train_step
from rlexport.export.artifact import Artifact, ArtifactError, describe, load_artifact

__all__ = [
    "export_program",
    "export_onnx",
    "export_torchscript",
    "export_aoti",
    "export_grad",
    "export_train_step",
    "validate_train_step",
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
