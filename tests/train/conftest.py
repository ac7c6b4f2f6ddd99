"""Shared helpers for tests/train: a CLI runner with the app's error handling, short configs."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _local_main():
    """``rlexport.cli.app.main`` with only train/evaluate registered (while other command modules
    listed in COMMAND_MODULES are not importable yet): the same error handling."""
    import sys

    import typer

    try:
        import click
    except ImportError:  # typer >= 0.20 vendors click
        from typer import _click as click

    from rlexport.cli import errors
    from rlexport.cli import evaluate as ev
    from rlexport.cli import train as tr

    app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
    tr.register(app)
    ev.register(app)

    @app.callback()
    def _root() -> None:
        pass

    try:
        app(standalone_mode=False)
    except errors.UsageError as err:
        errors.console_err.print(f"[bold red]error:[/] {err}")
        sys.exit(2)
    except typer.Exit as err:
        sys.exit(err.exit_code)
    except click.exceptions.ClickException as err:
        err.show()
        sys.exit(2)


def run_cli(args: list[str]) -> tuple[int, str]:
    """Run ``rlexport <args>`` in-process through ``main()``: (exit code, output)."""
    import contextlib
    import io
    import sys

    from rich.console import Console

    from rlexport.cli import errors

    try:
        from rlexport.cli import app as app_mod

        main = app_mod.main
    except ImportError:
        app_mod, main = None, _local_main
    out = io.StringIO()
    old_argv = sys.argv
    sys.argv = ["rlexport", *args]
    quiet = Console(file=out, width=400, color_system=None)
    saved = (errors.console_err, errors.console, getattr(app_mod, "console_err", None))
    errors.console_err = errors.console = quiet
    if app_mod is not None:
        app_mod.console_err = quiet
    import rlexport.cli.evaluate as ev_mod
    import rlexport.cli.train as tr_mod

    saved_mods = (tr_mod.console, tr_mod.console_err, ev_mod.console)
    tr_mod.console = tr_mod.console_err = ev_mod.console = quiet
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                main()
            except SystemExit as e:
                code = int(e.code or 0)
    finally:
        sys.argv = old_argv
        errors.console_err, errors.console = saved[0], saved[1]
        if app_mod is not None:
            app_mod.console_err = saved[2]
        tr_mod.console, tr_mod.console_err, ev_mod.console = saved_mods
    return code, out.getvalue()


def tree_digest(path: Path) -> str:
    """A digest of every file name and content under ``path``."""
    h = hashlib.sha256()
    for p in sorted(Path(path).rglob("*")):
        h.update(str(p.relative_to(path)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture
def short_kwargs():
    return dict(total_steps=1536, export_artifacts=False, checkpoint_every=1)
