"""Where an artifact's files live, and the one atomic way to put them there.

An artifact ``X.ext`` has two sidecars: ``X.json`` (its metadata, the manifest) and ``X.golden/``
(its golden sample). Exporters write all three into a staging directory beside ``X.ext``
(``.X.ext.<pid>.<random>.tmp``) and :meth:`Staging.commit` moves them into place in a fixed order,
**the manifest last**. ``X.json`` records the SHA-256 of the model file and of the golden
sample (every file of it, ``"sha256"``), so a reader that finds them disagreeing (a commit cut
short by a kill, a file replaced by hand) refuses the artifact instead of checking a model
against another model's sample. A staging directory left by a killed process is removed by the
next export to the same path.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from rlexport.artifact.errors import ArtifactError

#: The commit steps in order; :data:`COMMIT_HOOK` is called after each (tests simulate a kill there).
COMMIT_STEPS = ("golden_aside", "golden", "model", "manifest")

#: Test hook: ``hook(step)`` after each commit step; raising from it stops the commit there, as a
#: kill would (the staging directory is then left for the next export to clean, like after a kill).
COMMIT_HOOK: Callable[[str], None] | None = None


def sidecar_paths(path: str | os.PathLike) -> tuple[Path, Path, Path]:
    """``(X.ext, X.json, X.golden)`` for an artifact path."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix else path
    return path, stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".golden")


def golden_dir_for(artifact: str | os.PathLike) -> Path:
    """``X.golden`` beside the artifact ``X.ext``."""
    return sidecar_paths(artifact)[2]


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_sha256(root: str | os.PathLike) -> str:
    """One SHA-256 over every file below ``root``: relative paths and contents, in sorted order."""
    root = Path(root)
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        digest.update(file_sha256(file).encode())
    return digest.hexdigest()


def check_output_path(path: str | os.PathLike) -> Path:
    """Refuse, before any work, an output path that cannot receive an artifact: an existing
    directory, a parent that is a file, or a sidecar name taken by the wrong kind of entry."""
    final, json_path, golden = sidecar_paths(path)
    if str(path) == "" or final.name in ("", ".", ".."):
        raise ArtifactError(f"output path {str(path)!r} names no file")
    if final.is_dir():
        raise ArtifactError(f"output path {final} is a directory; give a file name such as {final / 'model.onnx'}")
    for parent in final.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ArtifactError(f"output path {final}: {parent} is a file, not a directory")
            break
    if json_path.is_dir():
        raise ArtifactError(f"output path {final}: its metadata path {json_path} is a directory")
    if golden.exists() and not golden.is_dir():
        raise ArtifactError(f"output path {final}: its golden-sample path {golden} is a file")
    return final


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_staging(final: Path) -> list[Path]:
    """Remove ``.X.ext.<pid>.*.tmp`` directories beside ``final`` whose process is gone."""
    removed = []
    for entry in final.parent.glob(f".{final.name}.*.tmp"):
        pid_text = entry.name[len(final.name) + 2:].split(".", 1)[0]
        if entry.is_dir() and (not pid_text.isdigit() or not _pid_alive(int(pid_text))):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


class Staging:
    """A staging directory beside the destination; :meth:`commit` moves everything into place.

    On any error before ``commit`` the directory is removed and nothing at the destination changes.
    """

    def __init__(self, path: str | os.PathLike):
        self.final, self.final_json, self.final_golden = sidecar_paths(check_output_path(path))
        self.final.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(self.final)
        self.dir = Path(tempfile.mkdtemp(prefix=f".{self.final.name}.{os.getpid()}.", suffix=".tmp", dir=self.final.parent))
        self.artifact = self.dir / self.final.name
        self.json = self.dir / self.final_json.name
        self.golden = self.dir / self.final_golden.name
        self._keep = False

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if not self._keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def _step(self, name: str) -> None:
        if COMMIT_HOOK is not None:
            self._keep = True  # a simulated kill leaves the staging directory, as a real one does
            COMMIT_HOOK(name)
            self._keep = False

    def commit(self) -> Path:
        """Move the staged golden sample, model file and (last) manifest into place."""
        if self.final_golden.exists():
            os.replace(self.final_golden, self.dir / ".old-golden")
        self._step("golden_aside")
        if self.golden.exists():
            os.replace(self.golden, self.final_golden)
        self._step("golden")
        os.replace(self.artifact, self.final)
        self._step("model")
        if self.json.exists():
            os.replace(self.json, self.final_json)
        elif self.final_json.exists():
            self.final_json.unlink()  # an old manifest would describe another model
        self._step("manifest")
        return self.final


def copy_artifact(src: str | os.PathLike, dest: str | os.PathLike,
                  check: Callable[[Staging], None] | None = None) -> Path:
    """Copy ``X.ext`` with ``X.json`` and ``X.golden/`` to ``dest`` (same file name: the sidecars
    name the artifact) through a :class:`Staging` directory; ``check(stage)`` may inspect the
    staged copy and raise, and then nothing at ``dest`` changes. Returns ``dest``."""
    src, dest = Path(src), Path(dest)
    if src.name != dest.name:
        raise ArtifactError(f"copy_artifact: {src.name} and {dest.name} differ; the sidecars name the artifact")
    model, json_path, golden = sidecar_paths(src)
    with Staging(dest) as stage:
        shutil.copy2(model, stage.artifact)
        if json_path.is_file():
            shutil.copy2(json_path, stage.json)
        if golden.is_dir():
            shutil.copytree(golden, stage.golden)
        if check is not None:
            check(stage)
        return stage.commit()
