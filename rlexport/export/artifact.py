"""Load a written artifact (ONNX, .pt2, TorchScript, AOTInductor) and run it by input name.

``load_artifact(path)`` reads ``X.json`` beside the artifact when there is one (written by every
rlexport exporter) and otherwise recognises the format from the file itself; ``Artifact.runner
(backend)`` returns a function ``{input name: array} -> {output name: array}``.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlexport.export.common import onnx_metadata, sidecar_paths

Runner = Callable[[Mapping[str, Any]], dict[str, np.ndarray]]

FORMATS = ("onnx", "pt2", "torchscript", "aoti")
# backend name -> (format, device or provider)
ARTIFACT_BACKENDS = {
    "onnx": ["onnx-cpu", "onnx-cuda", "onnx-tensorrt"],
    "pt2": ["pt2", "pt2-cuda"],
    "torchscript": ["torchscript", "torchscript-cuda"],
    "aoti": ["aoti"],
}


class ArtifactError(ValueError):
    """The path is missing or is not an artifact rlexport can read."""


class BackendUnavailable(RuntimeError):
    """The backend cannot run here (no CUDA device, provider not installed, ...)."""


def detect_format(path: Path) -> str:
    if path.suffix == ".onnx":
        return "onnx"
    head = path.read_bytes()[:4] if path.is_file() else b""
    if head.startswith(b"PK"):
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
        if any("aotinductor" in n for n in names):
            return "aoti"
        if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
            return "torchscript"
        return "pt2"
    if path.suffix == ".pt2":
        return "pt2"
    # an ONNX protobuf without the suffix
    try:
        import onnx

        onnx.load_model(str(path), load_external_data=False)
        return "onnx"
    except Exception:  # noqa: BLE001
        pass
    raise ArtifactError(f"{path} is not an ONNX model, an exported program, a TorchScript file or an AOTInductor package")


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
        from rlexport.runtime.onnx import make_session, provider_status, run_session

        reason = provider_status(provider)
        if reason is not None:
            raise BackendUnavailable(reason)
        session = make_session(self.path, provider, strict=provider != "cpu", dtype=self.dtype)
        outputs = [o.name for o in session.get_outputs()]
        return lambda inputs: run_session(session, inputs, outputs)

    def _pt2_fn(self, device: str):
        import torch

        ep = torch.export.load(str(self.path))
        if device == "cuda":
            from torch.export.passes import move_to_device_pass

            ep = move_to_device_pass(ep, "cuda")
        return ep.module()

    def _ts_fn(self, device: str):
        import torch

        return torch.jit.load(str(self.path), map_location=device)

    def _aoti_fn(self, device: str):
        import torch._inductor

        return torch._inductor.aoti_load_package(str(self.path))


def _require_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailable("no CUDA device")


def _torch_runner(fn, input_names: list[str], output_names: list[str], device: str) -> Runner:
    import torch

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
            t = v if isinstance(v, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(v))
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
    import onnx

    model = onnx.load_model(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    ins = [i.name for i in model.graph.input if i.name not in inits]
    outs = [o.name for o in model.graph.output]
    meta = {p.key: p.value for p in model.metadata_props}
    return ins, outs, meta


def load_artifact(path: str | os.PathLike) -> Artifact:
    """Open an artifact. Raises ``ArtifactError`` for a missing file or one that is not an artifact."""
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"{path}: no such file")
    if path.is_dir():
        raise ArtifactError(f"{path} is a directory, not an artifact")
    _, json_path, golden = sidecar_paths(path)
    meta: dict[str, Any] = {}
    if json_path.is_file() and json_path != path:
        try:
            meta = json.loads(json_path.read_text())
        except json.JSONDecodeError as err:
            raise ArtifactError(f"{json_path}: not valid JSON: {err}") from err
    if meta.get("artifact") and meta["artifact"] != path.name:
        meta = {}  # X.json of another artifact with the same stem (X.onnx vs X.pt2)
    fmt = meta.get("format") or detect_format(path)
    if fmt not in FORMATS:
        raise ArtifactError(f"{path}: unknown format {fmt!r}")
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
    if not ins or not outs:
        # fall back to the golden sample's names (written in graph order)
        try:
            from rlexport.export.golden import read_golden

            sample = read_golden(golden)
            ins = ins or list(sample.cases[0].inputs)
            outs = outs or list(sample.cases[0].outputs)
        except Exception:  # noqa: BLE001
            pass
    if fmt == "torchscript" and not ins:
        import torch

        m = torch.jit.load(str(path))
        ins = [a.name for a in m.forward.schema.arguments[1:]]
    if fmt == "pt2" and not ins:
        import torch

        ins = list(torch.export.load(str(path)).graph_signature.user_inputs)
    if not ins:
        raise ArtifactError(f"{path}: cannot tell the artifact's input names (no {json_path.name} and no golden sample)")
    meta.setdefault("format", fmt)
    return Artifact(path=path, format=fmt, meta=meta, input_names=ins, output_names=outs)


def _onnx_type(t) -> tuple[str, list]:
    import onnx

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
        import onnx

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
                import torch

                ep = torch.export.load(str(artifact.path))
                info["nodes"] = sum(1 for n in ep.graph.nodes if n.op == "call_function")
            elif artifact.format == "torchscript":
                import torch

                info["nodes"] = sum(1 for _ in torch.jit.load(str(artifact.path)).inlined_graph.nodes())
        except Exception:  # noqa: BLE001 - inspection is best effort
            pass
    try:
        from rlexport.export.golden import read_golden

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
