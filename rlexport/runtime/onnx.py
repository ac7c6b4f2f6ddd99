"""ONNX Runtime sessions and execution providers.

Provider short names: ``"cpu"``, ``"cuda"``, ``"tensorrt"``. ``provider_status(name)`` says
whether a session on that provider can really be made here (the onnxruntime-gpu wheel lists the
CUDA and TensorRT providers even on machines without a GPU or without TensorRT's libraries; a
session then silently falls back to CPU, which this module refuses to count as the provider).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


class SessionError(RuntimeError):
    """ONNX Runtime could not create a session (e.g. an operator without a kernel for a dtype)."""


def provider_name(short: str) -> str:
    try:
        return PROVIDERS[short]
    except KeyError:
        raise ValueError(f"unknown ONNX Runtime provider {short!r}; choose one of {list(PROVIDERS)}") from None


@lru_cache(maxsize=None)
def _cuda_device_present() -> bool:
    try:
        import torch

        if torch.cuda.is_available():
            return True
    except Exception:  # noqa: BLE001
        pass
    return os.path.exists("/dev/nvidia0") or os.path.exists("/dev/nvidiactl")


@lru_cache(maxsize=None)
def provider_status(short: str) -> str | None:
    """``None`` when sessions can run on provider ``short`` here, else the reason they cannot."""
    import onnxruntime as ort

    full = provider_name(short)
    if full not in ort.get_available_providers():
        return "provider not installed"
    if short == "cpu":
        return None
    if not _cuda_device_present():
        return "no CUDA device"
    # Probe: a tiny model; a provider whose libraries are missing falls back to CPU.
    try:
        session = make_session(_probe_model(), short, strict=True)
    except SessionError as err:
        return f"provider not usable: {str(err).splitlines()[0][:160]}"
    if full not in session.get_providers():
        return "provider not usable (session fell back to CPU)"
    return None


@lru_cache(maxsize=1)
def _probe_model() -> bytes:
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def available_providers() -> list[str]:
    """The short names of the providers usable here, CPU always last."""
    return [p for p in ("tensorrt", "cuda", "cpu") if provider_status(p) is None]


def make_session(
    model: str | os.PathLike | bytes, provider: str = "cpu", *, threads: int | None = None, strict: bool = False, dtype: str | None = None
):
    """An ``onnxruntime.InferenceSession`` on ``provider`` (short name).

    Raises ``SessionError`` with the operator and dtype spelled out when ORT has no kernel for a
    node (``Softplus`` and ``Atanh`` have no float64 kernel on the CPU provider).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    providers = [provider_name(provider)]
    if provider != "cpu" and not strict:
        providers.append("CPUExecutionProvider")
    source = model if isinstance(model, bytes) else os.fspath(model)
    try:
        return ort.InferenceSession(source, sess_options=options, providers=providers)
    except Exception as err:  # noqa: BLE001 - ORT raises its own exception types
        raise SessionError(explain_session_error(str(err), provider, dtype)) from err


def explain_session_error(message: str, provider: str = "cpu", dtype: str | None = None) -> str:
    """ORT's message, prefixed with a one-line reading of the usual causes (``dtype``: the graph's)."""
    m = re.search(r"Could not find an implementation for (\w+)\((\d+)\) node with name '([^']*)'", message)
    if m:
        op, version, node = m.groups()
        dtype = "float64 " if dtype == "float64" or "double" in message else ""
        hint = (
            f"ONNX Runtime's {provider.upper()} provider has no {dtype}kernel for {op} (opset {version}, node {node!r})"
        )
        if op in ("Softplus", "Atanh") or dtype:
            hint += "; formulate around it (e.g. softplus = relu(x) + log1p(exp(-|x|)), atanh = 0.5*(log1p(y) - log1p(-y))) or export float32"
        return f"{hint}. ORT said: {message.strip().splitlines()[0]}"
    return message.strip()


NUMPY_DTYPE_OF_ORT_TYPE = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}


def run_session(session, inputs: Mapping[str, Any], output_names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Run ``session`` on named inputs (numpy arrays or tensors); returns ``{output name: array}``.

    Inputs the graph does not take are an error naming them; missing ones too.
    """
    expected = {i.name: i for i in session.get_inputs()}
    feed = {}
    for name, value in inputs.items():
        if name not in expected:
            raise ValueError(f"the ONNX graph has no input {name!r}; its inputs: {list(expected)}")
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        arr = np.asarray(value)
        want = NUMPY_DTYPE_OF_ORT_TYPE.get(expected[name].type)
        if want is not None and arr.dtype != want:
            raise TypeError(f"input {name!r} has dtype {arr.dtype} but the graph expects {expected[name].type}")
        feed[name] = np.ascontiguousarray(arr)
    missing = [n for n in expected if n not in feed]
    if missing:
        raise ValueError(f"missing ONNX input {missing[0]!r}; the graph takes {list(expected)}")
    names = list(output_names) if output_names else [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feed)))
