"""The ``run_cli`` fixture: the real ``rlexport`` entry point, in-process."""

import sys

import pytest


def _cli_main():
    """``rlexport.cli.app.main``: the real console entry point."""
    from rlexport.cli import app

    return app.main


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """Run the real console entry point in-process; returns ``(exit code, stdout + stderr)``."""

    def run(*args):
        main = _cli_main()
        from rlexport.cli import errors

        monkeypatch.setattr(errors.console, "width", 250)
        monkeypatch.setattr(errors.console_err, "width", 250)
        monkeypatch.setattr(sys, "argv", ["rlexport", *map(str, args)])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out = capsys.readouterr()
        return code, out.out + out.err

    return run
