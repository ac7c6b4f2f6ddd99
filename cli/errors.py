"""Shared console objects and the error type that the CLI turns into one red line and exit 2."""

from __future__ import annotations

from rich.console import Console

console = Console()
console_err = Console(stderr=True)


class UsageError(Exception):
    """A bad option or input: printed as one line, exit status 2."""
