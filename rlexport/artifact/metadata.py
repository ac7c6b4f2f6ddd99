"""``X.json`` (an artifact's metadata and manifest) and the ONNX ``metadata_props`` copy of it.

``X.json`` keys every exporter writes: ``format`` (``onnx``, ``pt2``, ``torchscript``, ``aoti``),
``artifact`` (the model file's name), ``kind`` (``forward``, ``grad``, ``train_step``),
``rlexport_version``, ``torch_version``, ``class``, ``config``, ``dtype``, ``inputs`` /
``outputs`` (name -> ``{dtype, shape}``, dynamic dims by label, graph order), ``input_names``,
``out_keys``, ``dynamic_axes``, ``rtol`` / ``atol``, ``golden`` and ``sha256`` (``{"model": ...,
"golden_index": ...}``: the digests :func:`check_manifest` compares).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import onnx
import torch

from rlexport import __version__
from rlexport.artifact.dtypes import dtype_name
from rlexport.artifact.errors import ArtifactError
from rlexport.artifact.jsonio import dumps_json, read_json
from rlexport.artifact.paths import file_sha256, sidecar_paths

ONNX_METADATA_PREFIX = "rlexport."
#: The ``X.json`` keys copied into an ONNX model's ``metadata_props``.
ONNX_METADATA_KEYS = ("format", "kind", "rlexport_version", "torch_version", "class", "config", "dtype",
                      "input_names", "out_keys", "dynamic_axes", "opset")


def set_onnx_metadata(model: Any, metadata: Mapping[str, Any]) -> None:
    """Replace ``model.metadata_props`` by ``rlexport.<key>`` entries; every value is JSON (a string
    too), so a reader in any language parses each entry the same way."""
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key = ONNX_METADATA_PREFIX + key
        entry.value = dumps_json(value)


def onnx_metadata(props: Mapping[str, str]) -> dict[str, Any]:
    """The ``rlexport.*`` entries of an ONNX model's ``metadata_props`` (as a name → value mapping)."""
    out: dict[str, Any] = {}
    for key, value in props.items():
        if not key.startswith(ONNX_METADATA_PREFIX):
            continue
        try:
            out[key.removeprefix(ONNX_METADATA_PREFIX)] = json.loads(value)
        except (json.JSONDecodeError, TypeError):
            out[key.removeprefix(ONNX_METADATA_PREFIX)] = value
    return out


def module_config(module: Any) -> Any:
    """``module.export_config()`` when it has one (JSON-able), else its ``repr``."""
    if hasattr(module, "export_config"):
        try:
            config = module.export_config()
            json.dumps(config)
            return config
        except Exception:  # noqa: BLE001 - fall back to repr
            pass
    return repr(module)


def tensor_spec(tensor: torch.Tensor, dims: Mapping[int, str] | None = None, **extra: Any) -> dict:
    """``{"dtype", "shape" (dynamic dims by label), **extra}`` of one graph input or output."""
    shape: list[int | str] = list(tensor.shape)
    for d, lbl in (dims or {}).items():
        shape[d] = lbl
    return {"dtype": dtype_name(tensor.dtype), "shape": shape, **extra}


def artifact_metadata(
    fmt: str,
    kind: str,
    module: Any,
    dtype: torch.dtype,
    inputs: Mapping[str, dict],
    outputs: Mapping[str, dict],
    dims: Mapping[str, Mapping[int, str]],
    rtol: float,
    atol: float,
    **extra: Any,
) -> dict[str, Any]:
    """The ``X.json`` of one artifact (the writer adds ``artifact``, ``golden`` and ``sha256``)."""
    meta = {
        "format": fmt,
        "kind": kind,
        "rlexport_version": __version__,
        "torch_version": torch.__version__,
        "class": f"{type(module).__module__}.{type(module).__qualname__}",
        "config": module_config(module),
        "dtype": dtype_name(dtype),
        "inputs": dict(inputs),
        "outputs": dict(outputs),
        "input_names": list(inputs),
        "out_keys": list(outputs),
        "dynamic_axes": {n: {str(d): lbl for d, lbl in s.items()} for n, s in dims.items()},
        "rtol": rtol,
        "atol": atol,
    }
    meta.update(extra)
    return meta


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of an artifact: ``X.json`` when present (it must be a JSON object written for
    this file), else an ONNX model's ``rlexport.*`` ``metadata_props``; ``ArtifactError`` otherwise."""
    path = Path(path)
    json_path = sidecar_paths(path)[1]
    if json_path.is_file() and json_path != path:
        meta = read_json(json_path)
        if not isinstance(meta, dict):
            raise ArtifactError(f"{json_path}: not a JSON object")
        if meta.get("artifact") in (None, path.name):
            return meta
    if path.suffix == ".onnx" or path.is_file():
        try:
            model = onnx.load(os.fspath(path), load_external_data=False)
        except Exception as err:  # noqa: BLE001 - protobuf raises several types
            raise ArtifactError(f"{path}: no {json_path.name} and not a readable ONNX model ({type(err).__name__})") from None
        meta = onnx_metadata({p.key: p.value for p in model.metadata_props})
        if meta:
            return meta
    raise ArtifactError(f"{path}: no {json_path.name} and no 'rlexport.*' metadata in the model")


def manifest_digests(model: Path, golden_dir: Path) -> dict[str, str]:
    """``{"model": sha256, "golden_index": sha256}`` as ``X.json`` records them."""
    out = {"model": file_sha256(model)}
    index = golden_dir / "index.json"
    if index.is_file():
        out["golden_index"] = file_sha256(index)
    return out


def check_manifest(path: str | os.PathLike, meta: Mapping[str, Any]) -> None:
    """``ArtifactError`` when ``X.json``'s recorded SHA-256 of the model file or of the golden
    sample's ``index.json`` does not match the files (an interrupted write, a file replaced by
    hand). Metadata without digests (foreign or older artifacts) is not checked."""
    digests = meta.get("sha256")
    if digests is None:
        return
    path = Path(path)
    if not isinstance(digests, Mapping):
        raise ArtifactError(f"{sidecar_paths(path)[1]}: 'sha256' must be a mapping")
    got = manifest_digests(path, sidecar_paths(path)[2])
    for key, want in digests.items():
        if got.get(key) != want:
            what = "the model file" if key == "model" else "the golden sample's index.json"
            raise ArtifactError(
                f"{path}: {what} does not match {sidecar_paths(path)[1].name} (SHA-256 {str(got.get(key))[:12]}... "
                f"recorded {str(want)[:12]}...): an interrupted or mixed write; export it again"
            )
