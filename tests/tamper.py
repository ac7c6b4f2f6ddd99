"""Tampering with written artifacts, for the tests that must see a well-formed but wrong artifact
fail numerically (exit 1) rather than be refused as an input error (exit 2)."""

from __future__ import annotations

import json

import onnx

from rlexport.artifact.metadata import manifest_digests
from rlexport.artifact.paths import sidecar_paths


def reseal(path) -> None:
    """Re-record ``X.json``'s SHA-256 digests after tampering with the model file: the artifact is
    then well-formed but numerically wrong (``validate`` must report a mismatch, exit 1); without
    this, the digest check refuses the tampered file as an input error."""
    _, json_path, golden = sidecar_paths(path)
    meta = json.loads(json_path.read_text())
    meta["sha256"] = manifest_digests(path, golden)
    json_path.write_text(json.dumps(meta))


def swap_onnx_outputs(path, a, b):
    """Tamper with an ONNX artifact: rename ``a`` <-> ``b`` everywhere in the nodes, so graph output
    ``a`` carries ``b``'s values (``validate`` must then fail, naming both)."""
    model = onnx.load(str(path))
    rename = {a: b, b: a}
    for node in model.graph.node:
        for field in (node.input, node.output):
            for i, name in enumerate(field):
                if name in rename:
                    field[i] = rename[name]
    onnx.save(model, str(path))
    reseal(path)
