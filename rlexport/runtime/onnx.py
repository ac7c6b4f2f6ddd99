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
import onnxruntime as ort
import torch
from onnx import TensorProto, helper

from rlexport.artifact.dtypes import DTYPES

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
    if torch.cuda.is_available():
        return True
    return os.path.exists("/dev/nvidia0") or os.path.exists("/dev/nvidiactl")


@lru_cache(maxsize=None)
def provider_status(short: str) -> str | None:
    """``None`` when sessions can run on provider ``short`` here, else the reason they cannot."""
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
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def available_providers() -> list[str]:
    """The short names of the providers usable here, CPU always last."""
    return [p for p in ("tensorrt", "cuda", "cpu") if provider_status(p) is None]


def session_options(threads: int | None = None, spinning: bool | None = None):
    """The one ``onnxruntime.SessionOptions`` set-up: quiet logs, ``threads`` intra-op threads (one
    inter-op), and no busy-waiting threads when ``spinning`` is false (default: not when
    ``OMP_WAIT_POLICY=PASSIVE``, which on a small shared machine costs far more than it saves)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    if spinning is None:
        spinning = os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE"
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def make_session(
    model: str | os.PathLike | bytes,
    provider: str | Sequence[str] = "cpu",
    *,
    threads: int | None = None,
    spinning: bool | None = None,
    strict: bool = False,
    dtype: str | None = None,
    options: Any = None,
):
    """An ``onnxruntime.InferenceSession`` on ``provider`` (a short name, or a list of ORT
    provider names such as ``["CUDAExecutionProvider"]``), options from :func:`session_options`
    unless ``options`` is given.

    Raises ``SessionError`` with the operator and dtype spelled out when ORT has no kernel for a
    node (``Softplus`` and ``Atanh`` have no float64 kernel on the CPU provider).
    """
    if options is None:
        options = session_options(threads, spinning)
    if isinstance(provider, str):
        providers = [provider_name(provider)]
        if provider != "cpu" and not strict:
            providers.append("CPUExecutionProvider")
        short = provider
    else:
        providers = list(provider) or ["CPUExecutionProvider"]
        short = next((k for k, v in PROVIDERS.items() if v == providers[0]), providers[0])
    source = model if isinstance(model, bytes) else os.fspath(model)
    try:
        return ort.InferenceSession(source, sess_options=options, providers=providers)
    except Exception as err:  # noqa: BLE001 - ORT raises its own exception types
        raise SessionError(explain_session_error(str(err), short, dtype)) from err


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


#: ONNX Runtime ``NodeArg.type`` -> the numpy dtype it takes (from the one dtype table).
NUMPY_DTYPE_OF_ORT_TYPE = {d.ort: d.numpy.type for d in DTYPES.values() if d.numpy is not None}


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
        feed[name] = np.require(arr, requirements="C")  # not ascontiguousarray: it makes 0-d arrays 1-d
    missing = [n for n in expected if n not in feed]
    if missing:
        raise ValueError(f"missing ONNX input {missing[0]!r}; the graph takes {list(expected)}")
    names = list(output_names) if output_names else [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feed)))
