import importlib.util
import sys
import types

import pytest


def _cli_main():
    """``rlexport.cli.app.main``; command modules other engineers have not landed yet are stubbed."""
    for name in ("rlexport.cli.demo", "rlexport.cli.check_estimator"):
        if name not in sys.modules and importlib.util.find_spec(name) is None:
            stub = types.ModuleType(name)
            stub.register = lambda app: None
            sys.modules[name] = stub
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
