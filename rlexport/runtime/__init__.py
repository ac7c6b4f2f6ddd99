"""Running exported graphs: ONNX Runtime sessions and providers, and ``OnnxTrainer``."""

from rlexport.runtime.onnx import SessionError, available_providers, make_session, provider_status, run_session
from rlexport.runtime.trainer import OnnxTrainer

__all__ = ["OnnxTrainer", "SessionError", "available_providers", "make_session", "provider_status", "run_session"]
