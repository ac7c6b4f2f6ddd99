"""Export an estimator module to ONNX with a dynamic batch and time axis, and run it in ORT.

Shared by ``rlexport check-estimator``, the tests and ``benchmarks/estimators.py``. Inputs are
the estimator's keyword tensors (``[B, T, 1]`` values/flags, ``[B, T]`` log-probs); ONNX input
names are the keyword names, outputs ``advantage`` and ``value_target``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from rlexport.value.estimators import GAE, TD0Estimator, TD1Estimator, TDLambdaEstimator, VTrace

__all__ = ["ESTIMATOR_NAMES", "Positional", "dynamic_shapes", "build_estimator", "example_inputs", "export_onnx", "ort_session", "run_ort"]

ESTIMATOR_NAMES = ("gae", "td0", "td1", "td-lambda", "vtrace")


def build_estimator(name: str, *, gamma: float = 0.99, lmbda: float = 0.95, max_steps: int | None = None):
    """An estimator that takes ``state_value``/``next_state_value`` (no value network)."""
    extra = {} if max_steps is None else {"max_steps": max_steps}
    if name == "gae":
        return GAE(gamma=gamma, lmbda=lmbda, **extra)
    if name == "td0":
        return TD0Estimator(gamma=gamma, **extra)
    if name == "td1":
        return TD1Estimator(gamma=gamma, **extra)
    if name == "td-lambda":
        return TDLambdaEstimator(gamma=gamma, lmbda=lmbda, **extra)
    if name == "vtrace":
        return VTrace(gamma=gamma, **extra)
    raise ValueError(f"estimator {name!r} is not supported; choose one of {list(ESTIMATOR_NAMES)}")


def example_inputs(estimator, batch: int, horizon: int, dtype: torch.dtype = torch.float32, seed: int = 0) -> dict:
    """Random keyword inputs for ``estimator`` (random done/terminated flags)."""
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, horizon, 1)
    rnd = lambda: torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)  # noqa: E731
    done = torch.rand(shape, generator=gen) < 0.05
    inputs = {
        "next_reward": rnd(),
        "next_done": done,
        "next_terminated": done & (torch.rand(shape, generator=gen) < 0.5),
        "state_value": rnd(),
        "next_state_value": rnd(),
    }
    if isinstance(estimator, VTrace):
        inputs["sample_log_prob"] = (0.3 * torch.randn((batch, horizon), generator=gen, dtype=torch.float64)).to(dtype)
        inputs["target_log_prob"] = (0.3 * torch.randn((batch, horizon), generator=gen, dtype=torch.float64)).to(dtype)
    return inputs


class Positional(torch.nn.Module):
    """``estimator(**inputs)`` as a module with positional inputs in ``names`` order:
    ``torch.export`` handles a ``**kwargs`` forward poorly (dynamic shapes cannot name its keys)."""

    def __init__(self, estimator: torch.nn.Module, names):
        super().__init__()
        self.estimator = estimator
        self.names = list(names)

    def forward(self, *args: torch.Tensor):
        return self.estimator(**dict(zip(self.names, args)))


def dynamic_shapes(names) -> tuple:
    """Dynamic batch (dim 0) and time (dim 1) for every input of :class:`Positional`."""
    batch, time = torch.export.Dim("batch", min=1), torch.export.Dim("time", min=1)
    return (tuple({0: batch, 1: time} for _ in names),)


def export_onnx(estimator, example: Mapping[str, torch.Tensor], path: str | os.PathLike) -> Path:
    """Write ``estimator`` as ONNX (dynamic batch and time) to ``path`` via a temp file + rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(example)
    program = torch.onnx.export(
        Positional(estimator, names), tuple(example[n] for n in names), dynamic_shapes=dynamic_shapes(names),
        dynamo=True, input_names=names, output_names=list(estimator.out_keys), verbose=False,
    )
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        program.save(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def ort_session(path: str | os.PathLike, threads: int = 1, *, denormal_as_zero: bool = False):
    """A CPU ONNX Runtime session with ``threads`` intra-op threads.

    ``denormal_as_zero=True`` sets ORT's ``session.set_denormal_as_zero``: long horizons multiply
    discounts down into float denormals (< 1e-38 in float32), which made ORT's kernels up to ~5x
    slower at ``T = 100 000`` in our measurements; flushing them changes no result at float32
    precision. It is off by default because ORT sets the flush-to-zero mode of the *calling
    thread*, which then also applies to torch code running later in that thread.
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    if denormal_as_zero:
        so.add_session_config_entry("session.set_denormal_as_zero", "1")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def run_ort(session, inputs: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    names = [i.name for i in session.get_inputs()]
    feeds = {name: inputs[name].numpy() for name in names}
    outputs = session.run(None, feeds)
    return {o.name: v for o, v in zip(session.get_outputs(), outputs)}
