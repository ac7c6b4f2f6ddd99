"""The ``rlexport`` Typer application.

Each command lives in its own small module under ``cli/`` and exposes ``register(app)``; this file
only assembles them. Commands hold no logic that the library lacks: they parse options, call
``rlexport`` and render the result with rich.
"""

from __future__ import annotations

import importlib
import sys

import typer

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
    """Console-script entry point: usage and input errors print one line and exit 2."""
    try:
        app(standalone_mode=False)
    except UsageError as err:
        console_err.print(f"[bold red]error:[/] {err}")
        sys.exit(2)
    except typer.Exit as err:
        sys.exit(err.exit_code)
    except typer.Abort:
        console_err.print("[red]aborted[/]")
        sys.exit(130)
    except Exception as err:  # click's own usage errors
        import click

        if isinstance(err, click.exceptions.ClickException):
            err.show()
            sys.exit(2)
        if isinstance(err, (ValueError, TypeError, FileNotFoundError, PermissionError)):
            console_err.print(f"[bold red]error:[/] {err}")
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
