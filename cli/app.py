"""The ``rlexport`` Typer application.

Each command lives in its own small module under ``cli/`` and exposes ``register(app)``; this file
only assembles them. Commands hold no logic that the library lacks: they parse options, call
``rlexport`` and render the result with rich.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import traceback

import typer
from rich.markup import escape

from rlexport import __version__
from rlexport.cli.errors import UsageError, console_err

app = typer.Typer(
    name="rlexport",
    help="Portable RL losses: train, export (ONNX, torch.export, TorchScript, AOTInductor) and validate parity.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Command modules, in the order `rlexport --help` lists them.
COMMAND_MODULES = [
    "rlexport.cli.check_estimator",
    "rlexport.cli.export",
    "rlexport.cli.validate",
    "rlexport.cli.inspect",
    "rlexport.cli.train",
    "rlexport.cli.evaluate",
    "rlexport.cli.bundle",
    "rlexport.cli.cache",
]


def _version_callback(value: bool) -> None:
    if value:
        import torch  # heavy: only for --version, so that `rlexport --help` stays fast

        typer.echo(f"rlexport {__version__} (torch {torch.__version__})")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Print the rlexport and torch versions and exit.", callback=_version_callback, is_eager=True
    ),
) -> None:
    """rlexport: TorchRL-compatible losses that run anywhere."""


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C: the command stops, its staging files are removed, exit 130."""


def _on_signal(signum, frame) -> None:
    # Typer turns a KeyboardInterrupt into a silent exit 130, so the line is printed here, first.
    what = "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted (Ctrl-C)"
    console_err.print(f"[red]{what}[/]: stopped, nothing half-written")
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def main() -> None:
    """Console-script entry point.

    Typer (standalone mode) reports its own usage errors with exit 2. Our commands raise
    ``UsageError`` (or a library ``ValueError``/``TypeError``/``OSError`` naming the bad input):
    one red line on stderr and exit 2; ``RLEXPORT_DEBUG=1`` prints the traceback first, then the
    same line and the same exit status. Ctrl-C and SIGTERM stop the command with one line and
    exit 130 (an export in progress leaves nothing behind: writes are staged and atomic).
    """
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        app()
    except (UsageError, ValueError, TypeError, OSError) as err:
        if os.environ.get("RLEXPORT_DEBUG"):
            traceback.print_exc()
        console_err.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    main()
