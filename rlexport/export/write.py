"""THE writer: stage the model file, ``X.golden/`` and ``X.json``, verify, then commit atomically."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rlexport.artifact.golden import write_golden
from rlexport.artifact.jsonio import write_json
from rlexport.artifact.metadata import manifest_digests
from rlexport.artifact.paths import Staging
from rlexport.export.plan import ExportError, GoldenSpec
from rlexport.runtime.check import PRIMARY_BACKEND, check_against_golden


def write_artifact(
    path: str | Path,
    metadata: Mapping[str, Any],
    save_model: Callable[[Path], Any],
    golden: GoldenSpec | None,
    *,
    verify: bool = True,
) -> Path:
    """Write ``save_model(staged path)``, the golden sample and ``X.json`` (with the SHA-256 of
    the model and of the golden index) into a staging directory; unless ``verify=False``, check
    the staged artifact against its golden sample on the format's primary backend; then commit
    (``rlexport.artifact.paths.Staging``: the manifest moves last). On any failure nothing is
    written (``ExportError`` carries the check's summary) and an existing artifact is untouched."""
    fmt = metadata["format"]
    with Staging(path) as stage:
        save_model(stage.artifact)
        meta = dict(metadata)
        meta["artifact"] = stage.final.name
        if golden is not None:
            write_golden(stage.golden, golden.cases, artifact=stage.final.name, kind=golden.kind, rtol=golden.rtol,
                         atol=golden.atol, state=golden.state, initial_state=golden.initial_state,
                         tolerances=golden.tolerances, extra=golden.extra)
            meta["golden"] = stage.final_golden.name
        meta["sha256"] = manifest_digests(stage.artifact, stage.golden)
        write_json(stage.json, meta)
        if verify and golden is not None:
            report = check_against_golden(stage.artifact, [PRIMARY_BACKEND[fmt]])
            if not report.passed:
                dims = meta.get("dynamic_axes") or "none (static export)"
                raise ExportError(
                    f"{fmt} {meta.get('kind', 'forward')} export of {str(meta.get('class', '?')).rsplit('.', 1)[-1]} "
                    f"did not verify against the float64 eager reference at {report.cases} (dynamic dims: {dims}); "
                    f"nothing written. {report.summary()}"
                )
        return stage.commit()
