"""The ``rlexport`` Typer application.

Each command lives in its own small module under ``cli/`` and exposes ``register(app)``; this file
only assembles them. Commands hold no logic that the library lacks: they parse options, call
``rlexport`` and render the result with rich.
"""

from __future__ import annotations

import importlib
import os
import sys

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
]


def _version_callback(value: bool) -> None:
    if value:
        import torch

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


def main() -> None:
    """Console-script entry point.

    Typer (standalone mode) reports its own usage errors with exit 2. Our commands raise
    ``UsageError`` (or a library ``ValueError``/``TypeError``/``OSError`` naming the bad input):
    one red line on stderr and exit 2. ``RLEXPORT_DEBUG=1`` shows the full traceback instead.
    """
    try:
        app()
    except (UsageError, ValueError, TypeError, OSError) as err:
        if os.environ.get("RLEXPORT_DEBUG"):
            raise
        console_err.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        console_err.print("[red]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":
    main()
