"""CLI tests: the real ``rlexport`` entry point (``rlexport.cli.app.main``), in-process.

``run_cli(*args, width=250)`` returns ``(exit code, stdout + stderr)``; ``width`` is the terminal
width rich renders for (80 to check narrow-terminal output)."""

from __future__ import annotations

import os
import sys

import pytest

from rlexport.cli import app as app_module
from rlexport.cli import errors

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture
def run_cli(monkeypatch, capsys):
    def run(*args, width: int = 250):
        monkeypatch.setattr(errors.console, "width", width)
        monkeypatch.setattr(errors.console_err, "width", width)
        monkeypatch.setattr(sys, "argv", ["rlexport", *map(str, args)])
        code = 0
        try:
            app_module.main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out = capsys.readouterr()
        return code, out.out + out.err

    return run
