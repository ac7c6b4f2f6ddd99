"""The one error type of the artifact layer: a file that is missing, malformed or inconsistent."""

from __future__ import annotations


class ArtifactError(ValueError):
    """An artifact (model file, ``X.json`` or ``X.golden/``) that is missing, malformed, or does not
    match its sidecars. Always a bad input: the CLI reports it in one line and exits 2."""


class GoldenError(ArtifactError):
    """A golden sample that is missing, malformed or does not match its files."""
