"""Load a written artifact (ONNX, .pt2, TorchScript, AOTInductor) and run it by input name.

``load_artifact(path)`` decides the format from the file's content and suffix (an ``.onnx``
file must be an ONNX model, a zip archive is a .pt2 / AOTInductor package or a TorchScript file),
reads ``X.json`` beside it when there is one (its ``format`` must agree, and its recorded SHA-256
digests must match the model file and the golden sample), and refuses a ``.pt2`` archive whose
pickled members would unpickle anything beyond plain tensors before ``torch.export.load`` sees
it. ``Artifact.runner(backend)`` returns a function ``{input name: array} -> {output name: array}``.
"""

from __future__ import annotations

import io
import json
import os
import pickletools
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch.export.passes import move_to_device_pass

from rlexport.artifact.errors import ArtifactError
from rlexport.artifact.golden import read_golden
from rlexport.artifact.jsonio import read_json
from rlexport.artifact.metadata import check_manifest, onnx_metadata
from rlexport.artifact.paths import sidecar_paths
from rlexport.runtime.onnx import make_session, provider_status, run_session

Runner = Callable[[Mapping[str, Any]], dict[str, np.ndarray]]

FORMATS = ("onnx", "pt2", "torchscript", "aoti")
# format -> the backends that run it
ARTIFACT_BACKENDS = {
    "onnx": ["onnx-cpu", "onnx-cuda", "onnx-tensorrt"],
    "pt2": ["pt2", "pt2-cuda"],
    "torchscript": ["torchscript", "torchscript-cuda"],
    "aoti": ["aoti"],
}

#: The only globals a pickled member of a .pt2 archive may name: tensor and storage rebuilding.
SAFE_PICKLE_GLOBALS = frozenset(
    {("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"), ("collections", "OrderedDict"),
     ("torch", "Size"), ("torch", "device")}
    | {("torch", f"{t}Storage") for t in ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char",
                                          "Byte", "Bool", "ComplexFloat", "ComplexDouble")}
    | {("torch", name) for name in ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8",
                                    "uint8", "bool")}
)


#: The largest model file :func:`load_artifact` opens (4 GiB; ONNX protobuf models are at most
#: 2 GiB, external data is not loaded); pass ``max_model_bytes`` for another bound.
MAX_MODEL_BYTES = 4 * 2**30


class BackendUnavailable(RuntimeError):
    """The backend cannot run here (no CUDA device, provider not installed, ...)."""


def _zip_names(path: Path) -> list[str] | None:
    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.namelist()
    except zipfile.BadZipFile as err:
        raise ArtifactError(f"{path}: a damaged zip archive ({err})") from None


def detect_format(path: Path) -> str:
    """The artifact format from the file's content, checked against its suffix."""
    names = _zip_names(path)
    if names is None:
        try:
            onnx.load_model(str(path), load_external_data=False)
        except Exception:  # noqa: BLE001 - protobuf raises several types
            raise ArtifactError(
                f"{path} is not an ONNX model, an exported program, a TorchScript file or an AOTInductor package"
            ) from None
        return "onnx"
    if path.suffix == ".onnx":
        raise ArtifactError(f"{path} has the .onnx suffix but is a zip archive, not an ONNX model")
    if any("aotinductor" in n for n in names):
        return "aoti"
    if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
        return "torchscript"
    if any(n.endswith("archive_format") for n in names):
        return "pt2"
    raise ArtifactError(f"{path}: a zip archive that is neither a .pt2 program, an AOTInductor package nor TorchScript")


def _pickle_globals(data: bytes, what: str) -> set[tuple[str, str]]:
    """The ``(module, name)`` globals a pickle would import, read from its opcodes without
    unpickling (the memo is followed, so names fetched with ``BINGET`` count too); a
    ``STACK_GLOBAL`` whose names are not plain strings, or a malformed pickle, is ``ArtifactError``."""
    found: set[tuple[str, str]] = set()
    stack: list[Any] = []  # what each opcode pushed: a str for names, None for anything else
    memo: dict[int, Any] = {}
    try:
        for op, arg, _ in pickletools.genops(io.BytesIO(data)):
            name = op.name
            if name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
                stack.append(arg)
            elif name in ("BINGET", "LONG_BINGET", "GET"):
                stack.append(memo.get(int(arg)))
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1] if stack else None
            elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
                memo[int(arg)] = stack[-1] if stack else None
            elif name == "GLOBAL":
                module, attr = arg.split(" ", 1)
                found.add((module, attr))
                stack.append(None)
            elif name == "STACK_GLOBAL":
                module, attr = (stack[-2], stack[-1]) if len(stack) >= 2 else (None, None)
                if not (isinstance(module, str) and isinstance(attr, str)):
                    raise ValueError("STACK_GLOBAL without two plain names before it")
                found.add((module, attr))
                stack.append(None)
            elif name in ("INST", "OBJ", "EXT1", "EXT2", "EXT4"):
                found.add(("<opcode>", name))
                stack.append(None)
            else:
                stack.append(None)
    except Exception as err:  # noqa: BLE001 - a malformed pickle
        raise ArtifactError(f"{what}: not a readable pickle ({err})") from None
    return found


def check_pt2_archive(path: Path) -> None:
    """Refuse a ``.pt2`` archive whose pickled members (``*.pkl``, nested ``*.pt`` archives,
    weights stored with ``use_pickle``) name any global beyond :data:`SAFE_PICKLE_GLOBALS`."""
    with zipfile.ZipFile(path) as zf:
        pickled = [n for n in zf.namelist() if n.endswith(".pkl")]
        for name in zf.namelist():
            if name.endswith("_config.json"):
                try:
                    config = json.loads(zf.read(name))
                except ValueError:
                    raise ArtifactError(f"{path}: member {name} is not valid JSON") from None
                entries = config.get("config", {}) if isinstance(config, dict) else {}
                folder = name.rsplit("/", 1)[0]
                for entry in entries.values() if isinstance(entries, dict) else []:
                    if isinstance(entry, dict) and entry.get("use_pickle"):
                        pickled.append(f"{folder}/{entry.get('path_name')}")
        for name in pickled:
            _check_pickle(zf.read(name), f"{path}: member {name}")
        for name in zf.namelist():
            data = zf.read(name) if name.endswith(".pt") else b""
            if data.startswith(b"PK"):
                with zipfile.ZipFile(io.BytesIO(data)) as inner:
                    for sub in inner.namelist():
                        if sub.endswith(".pkl"):
                            _check_pickle(inner.read(sub), f"{path}: member {name}/{sub}")


def _check_pickle(data: bytes, what: str) -> None:
    unsafe = sorted(_pickle_globals(data, what) - SAFE_PICKLE_GLOBALS)
    if unsafe:
        names = ", ".join(f"{m}.{n}" for m, n in unsafe[:5])
        raise ArtifactError(f"{what} is pickle data that would load {names}: refused (only plain tensors are allowed)")


@dataclass
class Artifact:
    path: Path
    format: str
    meta: dict[str, Any] = field(default_factory=dict)
    input_names: list[str] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def dtype(self) -> str | None:
        return self.meta.get("dtype")

    @property
    def golden_path(self) -> Path:
        return sidecar_paths(self.path)[2]

    def backends(self) -> list[str]:
        return list(ARTIFACT_BACKENDS[self.format])

    def runner(self, backend: str) -> Runner:
        if backend not in ARTIFACT_BACKENDS[self.format]:
            raise ValueError(f"backend {backend!r} cannot run a {self.format} artifact; use one of {self.backends()}")
        if backend.startswith("onnx-"):
            return self._onnx_runner(backend.removeprefix("onnx-"))
        device = "cuda" if backend.endswith("-cuda") else "cpu"
        if device == "cuda":
            _require_cuda()
        fn = {"pt2": self._pt2_fn, "torchscript": self._ts_fn, "aoti": self._aoti_fn}[self.format](device)
        return _torch_runner(fn, self.input_names, self.output_names, device)

    # -- per format

    def _onnx_runner(self, provider: str) -> Runner:
        reason = provider_status(provider)
        if reason is not None:
            raise BackendUnavailable(reason)
        session = make_session(self.path, provider, strict=provider != "cpu", dtype=self.dtype)
        outputs = [o.name for o in session.get_outputs()]
        return lambda inputs: run_session(session, inputs, outputs)

    def _pt2_fn(self, device: str):
        check_pt2_archive(self.path)
        ep = torch.export.load(str(self.path))
        if device == "cuda":
            ep = move_to_device_pass(ep, "cuda")
        return ep.module()

    def _ts_fn(self, device: str):
        return torch.jit.load(str(self.path), map_location=device)

    def _aoti_fn(self, device: str):
        import torch._inductor  # heavy: loads the compiler stack, only for AOTInductor packages

        return torch._inductor.aoti_load_package(str(self.path))


def _require_cuda() -> None:
    if not torch.cuda.is_available():
        raise BackendUnavailable("no CUDA device")


def _torch_runner(fn, input_names: list[str], output_names: list[str], device: str) -> Runner:
    def run(inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        missing = [n for n in input_names if n not in inputs]
        if missing:
            raise ValueError(f"missing input {missing[0]!r}; the artifact takes {input_names}")
        unknown = [n for n in inputs if n not in input_names]
        if unknown:
            raise ValueError(f"the artifact has no input {unknown[0]!r}; it takes {input_names}")
        args = []
        for n in input_names:
            v = inputs[n]
            t = v if isinstance(v, torch.Tensor) else torch.from_numpy(np.require(v, requirements="C"))
            args.append(t.to(device))
        with torch.no_grad():
            out = fn(*args)
        if isinstance(out, torch.Tensor):
            out = (out,)
        out = list(out)
        names = output_names or [f"output_{i}" for i in range(len(out))]
        if len(names) != len(out):
            raise ArtifactError(f"the artifact returned {len(out)} outputs but its metadata names {len(names)}: {names}")
        return {n: o.detach().cpu().numpy() for n, o in zip(names, out)}

    return run


def _onnx_names(path: Path) -> tuple[list[str], list[str], dict[str, Any]]:
    model = onnx.load_model(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    ins = [i.name for i in model.graph.input if i.name not in inits]
    outs = [o.name for o in model.graph.output]
    meta = {p.key: p.value for p in model.metadata_props}
    return ins, outs, meta


def load_artifact(path: str | os.PathLike, *, max_model_bytes: int | None = None) -> Artifact:
    """Open an artifact. ``ArtifactError`` for a missing file, one that is not an artifact, a model
    file larger than ``max_model_bytes`` (default :data:`MAX_MODEL_BYTES`, checked before it is
    read), an ``X.json`` that disagrees with it (format, SHA-256), or a ``.pt2`` archive with unsafe
    pickles."""
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"{path}: no such file")
    if path.is_dir():
        raise ArtifactError(f"{path} is a directory, not an artifact")
    limit = MAX_MODEL_BYTES if max_model_bytes is None else max_model_bytes
    size = path.stat().st_size
    if size > limit:
        raise ArtifactError(f"{path}: model file of {size} bytes is beyond the limit of {limit} bytes (max_model_bytes)")
    _, json_path, golden = sidecar_paths(path)
    meta: dict[str, Any] = {}
    if json_path.is_file() and json_path != path:
        meta = read_json(json_path)
        if not isinstance(meta, dict):
            raise ArtifactError(f"{json_path}: not a JSON object")
    if meta.get("artifact") and meta["artifact"] != path.name:
        meta = {}  # X.json of another artifact with the same stem (X.onnx vs X.pt2)
    fmt = detect_format(path)
    if meta.get("format") is not None and meta["format"] != fmt:
        raise ArtifactError(f"{json_path} says format {meta['format']!r} but {path.name} is a {fmt} artifact")
    check_manifest(path, meta)
    if fmt == "pt2":
        check_pt2_archive(path)
    ins = list(meta.get("input_names") or [])
    outs = list(meta.get("out_keys") or [])
    if fmt == "onnx":
        try:
            g_ins, g_outs, props = _onnx_names(path)
        except Exception as err:  # noqa: BLE001
            raise ArtifactError(f"{path} is not a readable ONNX model: {err}") from err
        ins, outs = g_ins, g_outs
        if not meta:
            meta = {"format": "onnx", **onnx_metadata(props)}
    if (not ins or not outs) and (golden / "index.json").is_file():
        sample = read_golden(golden)  # the golden sample's names, written in graph order
        ins = ins or list(sample.cases[0].inputs)
        outs = outs or list(sample.cases[0].outputs)
    if fmt == "torchscript" and not ins:
        m = torch.jit.load(str(path))
        ins = [a.name for a in m.forward.schema.arguments[1:]]
    if fmt == "pt2" and not ins:
        ins = list(torch.export.load(str(path)).graph_signature.user_inputs)
    if not ins:
        raise ArtifactError(f"{path}: cannot tell the artifact's input names (no {json_path.name} and no golden sample)")
    meta.setdefault("format", fmt)
    return Artifact(path=path, format=fmt, meta=meta, input_names=ins, output_names=outs)


def _onnx_type(t) -> tuple[str, list]:
    tt = t.type.tensor_type
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name if tt.elem_type else "?"
    dtype = "bool" if dtype == "bool" else dtype
    shape = [d.dim_param if d.dim_param else (d.dim_value if d.HasField("dim_value") else "?") for d in tt.shape.dim]
    return dtype, shape


def describe(path: str | os.PathLike) -> dict[str, Any]:
    """What ``rlexport inspect`` shows: format, inputs/outputs with dtypes and shapes (dynamic
    dims by label), opset, node count, metadata, golden cases."""
    artifact = load_artifact(path)
    info: dict[str, Any] = {
        "path": str(artifact.path),
        "format": artifact.format,
        "size_bytes": artifact.path.stat().st_size,
        "inputs": {},
        "outputs": {},
        "opset": None,
        "nodes": None,
        "metadata": {k: v for k, v in artifact.meta.items() if k not in ("inputs", "outputs")},
    }
    if artifact.format == "onnx":
        model = onnx.load_model(str(artifact.path), load_external_data=False)
        inits = {i.name for i in model.graph.initializer}
        for i in model.graph.input:
            if i.name not in inits:
                dtype, shape = _onnx_type(i)
                info["inputs"][i.name] = {"dtype": dtype, "shape": shape}
        for o in model.graph.output:
            dtype, shape = _onnx_type(o)
            info["outputs"][o.name] = {"dtype": dtype, "shape": shape}
        info["opset"] = {o.domain or "ai.onnx": o.version for o in model.opset_import}
        info["nodes"] = len(model.graph.node) + sum(len(f.node) for f in model.functions)
        info["initializers"] = len(model.graph.initializer)
        info["ir_version"] = model.ir_version
        info["metadata_props"] = {p.key: p.value for p in model.metadata_props}
    else:
        info["inputs"] = dict(artifact.meta.get("inputs") or {n: {} for n in artifact.input_names})
        info["outputs"] = dict(artifact.meta.get("outputs") or {n: {} for n in artifact.output_names})
        try:
            if artifact.format == "pt2":
                ep = torch.export.load(str(artifact.path))
                info["nodes"] = sum(1 for n in ep.graph.nodes if n.op == "call_function")
            elif artifact.format == "torchscript":
                info["nodes"] = sum(1 for _ in torch.jit.load(str(artifact.path)).inlined_graph.nodes())
        except Exception:  # noqa: BLE001 - inspection is best effort
            pass
    try:
        sample = read_golden(artifact.golden_path)
        info["golden"] = {
            "path": str(sample.path),
            "kind": sample.kind,
            "rtol": sample.rtol,
            "atol": sample.atol,
            "cases": [c.name for c in sample.cases],
        }
    except Exception:  # noqa: BLE001
        info["golden"] = None
    return info
