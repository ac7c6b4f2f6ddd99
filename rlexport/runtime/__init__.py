"""Loading and running artifacts: ONNX Runtime sessions and providers, ``.pt2`` / TorchScript /
AOTInductor loaders, ``OnnxTrainer``, and the one check of an artifact against its golden sample."""

from rlexport.runtime.check import ParityReport, ParityRow, check_against_golden
from rlexport.runtime.load import Artifact, BackendUnavailable, describe, load_artifact
from rlexport.runtime.onnx import SessionError, available_providers, make_session, provider_status, run_session
from rlexport.runtime.trainer import OnnxTrainer

__all__ = [
    "Artifact",
    "BackendUnavailable",
    "OnnxTrainer",
    "ParityReport",
    "ParityRow",
    "SessionError",
    "available_providers",
    "check_against_golden",
    "describe",
    "load_artifact",
    "make_session",
    "provider_status",
    "run_session",
]
