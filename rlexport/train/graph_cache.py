"""``rlexport train``'s start-up graphs through the content-addressed graph cache.

``export_cached(cache, kind, module, example, dest, export, options)`` copies the cached artifact
for the key of ``(kind, module, example, options)`` to ``dest``, or runs ``export(dest)`` and
stores the result. The key (``graph_description``) holds everything that changes a graph:

* ``kind`` and the exporter's ``options`` (optimizer, hyper-parameter defaults, dynamic batch);
* the module's structure (``module_fingerprint``): every submodule's class, its plain attributes
  (loss and estimator options such as ``clip_epsilon``, ``gamma``, the distribution kind), its
  parameters' names, shapes and dtypes, its buffers **with their values** (they are baked into
  the graph as constants), and plain tensor/array attributes with their values (the same);
* the example inputs' names, shapes and dtypes (the graph's signature; static dims included);
* the versions: rlexport's ``__version__`` and a SHA-256 of its source files (an editable
  install changes code without changing the version), torch, onnx, onnxruntime, onnxscript,
  numpy, Python.

Not the parameter values: every start-up graph (act, gae, train_step) takes the parameters as
inputs and embeds none of them (``tests/train/test_cache.py`` checks the graph bytes do not
change with the seed). The golden sample of a cached entry therefore holds the parameters of
the run that first exported that configuration; it verifies the same graph. The end of a run's
templates (``rlexport.export.bake``: ``policy.onnx``/``loss.onnx`` with the parameters and the
normalisation statistics as inputs) are keyed the same way, the ``lifted`` buffers by dtype and
shape only.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import importlib.metadata
import platform
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import rlexport
from rlexport.artifact.cache import GraphCache, cache_key

_PLAIN = (bool, int, float, str, type(None))
# not described: nn.Module's own bookkeeping (described below as parameters, buffers, submodules)
# and memo caches a module fills on its first call (``_forward_function``: the keyword forward of
# ``rlexport.inputs``; ``_call_plan_cache``: a loss's input/output plan), which derive from the
# attributes that are described; with them a module's key would depend on whether it was called
_SKIP_ATTRS = {"training", "_parameters", "_buffers", "_modules", "_non_persistent_buffers_set",
               "_forward_function", "_call_plan_cache"}


def _value_digest(value: torch.Tensor | np.ndarray) -> dict[str, Any]:
    """dtype, shape and the SHA-256 of the bytes of a constant the graph embeds."""
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
    else:
        t = np.ascontiguousarray(value)
        raw = t.tobytes()
    return {"dtype": str(t.dtype), "shape": list(t.shape), "sha256": hashlib.sha256(raw).hexdigest()}


def _describe(value: Any, depth: int, seen: set[int]) -> Any:
    """A JSON description of an attribute value that changes a graph when it changes."""
    if isinstance(value, enum.Enum):
        return f"{type(value).__qualname__}.{value.name}"
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, (torch.dtype, torch.device)):
        return str(value)
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return _value_digest(value)
    if isinstance(value, (list, tuple)):
        return [_describe(v, depth, seen) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _describe(v, depth, seen) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted(str(v) for v in value)
    if isinstance(value, nn.Module):
        return f"<module {type(value).__qualname__}>"  # described where named_modules lists it
    if callable(value) and hasattr(value, "__qualname__"):
        return f"<{getattr(value, '__module__', '')}.{value.__qualname__}>"
    if depth <= 0 or id(value) in seen or not hasattr(value, "__dict__"):
        return f"<{type(value).__module__}.{type(value).__qualname__}>"
    seen.add(id(value))
    return {"class": f"{type(value).__module__}.{type(value).__qualname__}",
            "attrs": {k: _describe(v, depth - 1, seen) for k, v in sorted(vars(value).items())}}


def module_fingerprint(module: nn.Module, lifted: Sequence[str] = ()) -> dict[str, Any]:
    """Everything about ``module`` that an export bakes into a graph, parameter values excepted;
    the buffers named in ``lifted`` (graph inputs of a template, ``rlexport.export.bake``) by
    dtype and shape only."""
    lifted = set(lifted)
    out: dict[str, Any] = {}
    for name, sub in module.named_modules(remove_duplicate=False):
        prefix = f"{name}." if name else ""
        attrs = {k: _describe(v, 3, set()) for k, v in sorted(vars(sub).items()) if k not in _SKIP_ATTRS}
        out[name or "."] = {
            "class": f"{type(sub).__module__}.{type(sub).__qualname__}",
            "attrs": attrs,
            "parameters": {n: {"dtype": str(p.dtype), "shape": list(p.shape), "requires_grad": p.requires_grad}
                           for n, p in sub.named_parameters(recurse=False)},
            "buffers": {n: ({"dtype": str(b.dtype), "shape": list(b.shape), "lifted": True} if prefix + n in lifted
                            else _value_digest(b)) for n, b in sub.named_buffers(recurse=False)},
        }
    return out


def _example_signature(example: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in example.items():
        arr = v if isinstance(v, torch.Tensor) else np.asarray(v)
        out[k] = {"dtype": str(arr.dtype), "shape": list(arr.shape)}
    return out


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def source_digest() -> str:
    """SHA-256 over rlexport's ``.py`` files (relative paths and contents)."""
    root = Path(rlexport.__file__).parent
    digest = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        digest.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()


def versions() -> dict[str, Any]:
    """The versions a cached graph depends on."""
    return {"rlexport": rlexport.__version__, "rlexport_source": source_digest(), "torch": torch.__version__,
            "onnx": _version("onnx"), "onnxruntime": _version("onnxruntime"), "onnxscript": _version("onnxscript"),
            "numpy": np.__version__, "python": platform.python_version(), "byteorder": sys.byteorder}


def graph_description(kind: str, module: nn.Module, example: Mapping[str, Any],
                      options: Mapping[str, Any], lifted: Sequence[str] = ()) -> dict[str, Any]:
    """The JSON description whose ``cache_key`` names one cached graph (see the module docstring;
    ``lifted``: buffers the graph takes as inputs, described without their values)."""
    return {"kind": kind, "options": dict(options), "module": module_fingerprint(module, lifted),
            "example": _example_signature(example), "versions": versions()}


def export_cached(cache: GraphCache | None, kind: str, module: nn.Module, example: Mapping[str, Any], dest: Path,
                  export: Callable[[Path], Any], options: Mapping[str, Any], lifted: Sequence[str] = ()) -> bool:
    """``dest`` (``X.onnx`` + sidecars) from ``cache`` when it holds this graph (True), else
    ``export(dest)`` and a copy into ``cache`` (False). ``cache=None``: always export.
    ``lifted``: buffers of ``module`` the graph takes as inputs (their values are not in the key)."""
    if cache is None:
        export(dest)
        return False
    description = graph_description(kind, module, example, options, lifted)
    key = cache_key(description)
    if cache.fetch(key, dest):
        return True
    export(dest)
    cache.store(key, dest, {"kind": kind, "options": description["options"], "example": description["example"],
                            "versions": description["versions"]})
    return False
