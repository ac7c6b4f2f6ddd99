"""rlexport: portable reinforcement-learning losses.

Tensor-only, TorchRL-compatible losses and value estimators that export to ``torch.export``,
ONNX, TorchScript and AOTInductor, with parity validation across runtimes.
"""

__version__ = "0.1.0"
