"""The content-addressed graph cache: whole artifact folders under a key, on disk.

Layout (``root`` = ``$RLEXPORT_CACHE_DIR``, else ``$XDG_CACHE_HOME/rlexport``, else
``~/.cache/rlexport``)::

    root/graphs/<key>/entry.json          format, key, artifact name, digest, bytes, description
    root/graphs/<key>/artifact/X.ext      the model file
    root/graphs/<key>/artifact/X.json     its manifest
    root/graphs/<key>/artifact/X.golden/  its golden sample

``key`` is the SHA-256 of a JSON description of everything that changes the graph (the caller
builds it: ``rlexport.train.graph_cache``). An entry is staged in a hidden folder beside its
final place and renamed into place in one ``os.rename``: two processes storing the same key at
once both finish, the second rename fails and that process discards its copy (both copies hold
the same graph). ``entry.json`` records one SHA-256 over the artifact's three parts; a reader
recomputes it on the copy it makes and, on a mismatch (a torn, damaged or edited entry), discards
the entry with one warning line and reports a miss: a bad entry is never used. Reading an entry
touches ``entry.json``; when the cache grows beyond its bound (``$RLEXPORT_CACHE_MAX_MB``, default
512 MiB) the least recently used entries are removed.

The cache is an optimisation: a cache folder that cannot be written costs a warning line and the
run goes on exporting.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlexport.artifact.errors import ArtifactError
from rlexport.artifact.jsonio import dumps_json, read_json, write_json
from rlexport.artifact.paths import Staging, copy_artifact, file_sha256, remove_stale_staging, sidecar_paths, tree_sha256

CACHE_DIR_ENV = "RLEXPORT_CACHE_DIR"
CACHE_MAX_MB_ENV = "RLEXPORT_CACHE_MAX_MB"
DEFAULT_MAX_MB = 512
ENTRY_FORMAT = "rlexport-graph-cache"
ENTRY_VERSION = 1
ENTRY_NAME = "entry.json"

log = logging.getLogger("rlexport.cache")


class CacheError(ArtifactError):
    """A cache setting that cannot be used (a bad ``$RLEXPORT_CACHE_MAX_MB``)."""


def default_cache_dir() -> Path:
    """``$RLEXPORT_CACHE_DIR``, else ``$XDG_CACHE_HOME/rlexport``, else ``~/.cache/rlexport``."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rlexport"


def default_max_bytes() -> int:
    """``$RLEXPORT_CACHE_MAX_MB`` (MiB, a number >= 0) in bytes, else 512 MiB."""
    text = os.environ.get(CACHE_MAX_MB_ENV)
    if not text:
        return DEFAULT_MAX_MB * 2**20
    try:
        mib = float(text)
    except ValueError:
        mib = -1.0
    if not mib >= 0:
        raise CacheError(f"${CACHE_MAX_MB_ENV}={text!r}: give the cache's size bound in MiB, a number >= 0")
    return int(mib * 2**20)


def cache_key(description: Mapping[str, Any]) -> str:
    """The SHA-256 of ``description`` as canonical JSON (sorted keys, no spaces)."""
    text = dumps_json(description, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def artifact_digest(model: Path, json_path: Path, golden: Path) -> str:
    """One SHA-256 over an artifact's model file, ``X.json`` and every file of ``X.golden/``."""
    digest = hashlib.sha256()
    for part in (model, json_path):
        digest.update(file_sha256(part).encode() if part.is_file() else b"-")
    digest.update(tree_sha256(golden).encode() if golden.is_dir() else b"-")
    return digest.hexdigest()


def _tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


@dataclass(frozen=True)
class CacheEntry:
    key: str
    path: Path  # root/graphs/<key>
    name: str  # the artifact's file name
    bytes: int
    last_used: float  # entry.json's mtime
    description: Mapping[str, Any]


class _EntryMismatch(ArtifactError):
    pass


class GraphCache:
    """Artifact folders by key under ``root/graphs`` (see the module docstring), at most
    ``max_bytes`` in all (least recently used first out)."""

    def __init__(self, root: str | os.PathLike | None = None, max_bytes: int | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()
        self.max_bytes = default_max_bytes() if max_bytes is None else int(max_bytes)
        self.graphs = self.root / "graphs"

    # -- reading ---------------------------------------------------------------------------
    def _read_entry(self, path: Path) -> CacheEntry:
        doc = read_json(path / ENTRY_NAME)
        if (not isinstance(doc, dict) or doc.get("format") != ENTRY_FORMAT or doc.get("version") != ENTRY_VERSION
                or doc.get("key") != path.name or not isinstance(doc.get("name"), str) or "digest" not in doc):
            raise ArtifactError(f"{path / ENTRY_NAME}: not a version-{ENTRY_VERSION} graph-cache entry for this key")
        return CacheEntry(path.name, path, doc["name"], int(doc.get("bytes", 0)), (path / ENTRY_NAME).stat().st_mtime,
                          doc.get("description", {}))

    def fetch(self, key: str, dest: str | os.PathLike) -> bool:
        """Copy the entry ``key`` to ``dest`` (``X.ext`` + sidecars, atomically; the file name must
        be the entry's) and return True; False on a miss. A damaged entry is discarded (one
        warning line) and counts as a miss."""
        path = self.graphs / key
        if not (path / ENTRY_NAME).is_file():
            return False
        dest = Path(dest)
        try:
            entry = self._read_entry(path)
            if entry.name != dest.name:
                raise ArtifactError(f"{path}: holds {entry.name}, not {dest.name}")
            want = read_json(path / ENTRY_NAME)["digest"]

            def check(stage: Staging) -> None:
                got = artifact_digest(stage.artifact, stage.json, stage.golden)
                if got != want:
                    raise _EntryMismatch(f"its files do not match its recorded SHA-256 ({got[:12]}... vs {str(want)[:12]}...)")

            copy_artifact(path / "artifact" / entry.name, dest, check=check)
        except FileNotFoundError:
            if not (path / ENTRY_NAME).is_file():  # evicted by another process meanwhile: a plain miss
                return False
            self._discard(path, "it is incomplete")
            return False
        except (ArtifactError, OSError, KeyError, ValueError) as err:
            self._discard(path, str(err))
            return False
        try:
            os.utime(path / ENTRY_NAME)  # least recently used: entry.json's mtime
        except OSError:
            pass
        return True

    # -- writing ---------------------------------------------------------------------------
    def store(self, key: str, artifact: str | os.PathLike, description: Mapping[str, Any]) -> bool:
        """Put a copy of the artifact ``X.ext`` (+ ``X.json``, ``X.golden/``) under ``key``; then
        evict down to the bound. True when this call added the entry; False when another process
        had stored it first, or (one warning line) when the cache cannot be written."""
        src = Path(artifact)
        model, json_path, golden = sidecar_paths(src)
        final = self.graphs / key
        try:
            self.graphs.mkdir(parents=True, exist_ok=True)
            remove_stale_staging(final)
            stage = Path(tempfile.mkdtemp(prefix=f".{key}.{os.getpid()}.", suffix=".tmp", dir=self.graphs))
            try:
                files = stage / "artifact"
                files.mkdir()
                shutil.copy2(model, files / model.name)
                if json_path.is_file():
                    shutil.copy2(json_path, files / json_path.name)
                if golden.is_dir():
                    shutil.copytree(golden, files / golden.name)
                digest = artifact_digest(files / model.name, files / json_path.name, files / golden.name)
                write_json(stage / ENTRY_NAME, {
                    "format": ENTRY_FORMAT, "version": ENTRY_VERSION, "key": key, "name": model.name,
                    "digest": digest, "bytes": _tree_bytes(files), "description": dict(description),
                })
                try:
                    os.rename(stage, final)  # atomic; fails when another process put the key first
                except OSError:
                    if (final / ENTRY_NAME).is_file():
                        return False
                    raise
            finally:
                if stage.exists():
                    shutil.rmtree(stage, ignore_errors=True)
            self.evict(keep=key)
            return True
        except OSError as err:
            log.warning("warning: graph cache %s cannot be written (%s); continuing without it", self.root,
                        err.strerror or err)
            return False

    # -- housekeeping ----------------------------------------------------------------------
    def entries(self) -> list[CacheEntry]:
        """The readable entries, least recently used first."""
        out = []
        if not self.graphs.is_dir():
            return out
        for path in self.graphs.iterdir():
            if path.name.startswith(".") or not path.is_dir():
                continue
            try:
                out.append(self._read_entry(path))
            except (ArtifactError, OSError):
                continue
        return sorted(out, key=lambda e: e.last_used)

    def size_bytes(self) -> int:
        return sum(e.bytes for e in self.entries())

    def evict(self, keep: str | None = None) -> list[str]:
        """Remove least recently used entries (never ``keep``) until the total is within the bound."""
        entries = self.entries()
        total = sum(e.bytes for e in entries)
        removed = []
        for e in entries:
            if total <= self.max_bytes:
                break
            if e.key == keep:
                continue
            self._remove(e.path)
            total -= e.bytes
            removed.append(e.key)
        return removed

    def clear(self) -> int:
        """Remove every entry (and leftover staging folders); returns the number of entries removed."""
        if not self.graphs.is_dir():
            return 0
        count = 0
        for path in list(self.graphs.iterdir()):
            if path.is_dir() and not path.name.startswith("."):  # hidden: another process's staging
                self._remove(path)
                count += 1
            elif path.is_dir() and path.name.startswith(".trash."):
                shutil.rmtree(path, ignore_errors=True)
        return count

    def info(self) -> dict[str, Any]:
        entries = self.entries()
        return {"root": str(self.root), "entries": len(entries), "bytes": sum(e.bytes for e in entries),
                "max_bytes": self.max_bytes}

    def _remove(self, path: Path) -> None:
        """Rename aside, then delete: a reader never sees a half-deleted entry under its key."""
        trash = path.with_name(f".trash.{path.name}.{os.getpid()}.tmp")
        try:
            os.rename(path, trash)
        except OSError:
            return  # gone already (another process)
        shutil.rmtree(trash, ignore_errors=True)

    def _discard(self, path: Path, why: str) -> None:
        log.warning("warning: graph cache entry %s is damaged (%s); discarded, exporting again", path, why)
        self._remove(path)
