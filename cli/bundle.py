"""``rlexport bundle``: write a training bundle (docs/bundle.md) that a host outside Python trains from.

The training options are exactly ``rlexport train``'s (parsed by that command's own parser, so
the two cannot drift apart); ``--from RUN`` bundles a trained run's config and last checkpoint
instead, to continue training elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import typer

from rlexport.cli.errors import UsageError, console
from rlexport.cli.train import _hidden

# ``rlexport train`` options that make no sense for a bundle (it has no run folder, no engine
# choice: the graphs are ONNX, and no Python-side export or progress bar).
_NOT_FOR_BUNDLES = {"engine": "--engine", "resume": "--resume", "export": "--export/--no-export",
                    "quiet": "--quiet", "threads": "--threads", "checkpoint_every": "--checkpoint-every",
                    "no_cache": "--no-cache"}
_FLAGS_OFF_BY_DEFAULT = ("quiet", "no_cache")  # False when not given
_CONFIG_FIELD = {"env": "env_id"}  # train option parameter -> TrainConfig field, where they differ


def register(app: typer.Typer) -> None:
    @app.command("bundle", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def bundle_cmd(
        ctx: typer.Context,
        out: Path = typer.Option(..., "--out", "-o", help="The bundle folder to write (new or empty)."),
        from_run: Path = typer.Option(None, "--from", help="Bundle this `rlexport train` run (its config and last checkpoint) instead."),
        formats: list[str] = typer.Option(None, "--format", help="Also write the graphs in this format: aoti (AOTInductor packages for a LibTorch host, examples/cpp). ONNX is always written. Repeatable."),
    ) -> None:
        """Write a training bundle: act, advantage and train-step ONNX graphs, initial state and bundle.json.
        Takes every `rlexport train` training option (--env, --algo, --total-steps, --seed, --num-envs, ...)."""
        from rlexport.train.bundle import BundleError, make_bundle
        from rlexport.train.config import make_config

        train_command = typer.main.get_command(app).commands["train"]
        # Parse the remaining arguments with `rlexport train`'s own options (a bad one: click's
        # usage error, exit 2).
        params = train_command.make_context("rlexport bundle", list(ctx.args), parent=ctx).params
        # every train option defaults to None (not given), but --quiet and --no-cache to False
        refused = [flag for k, flag in _NOT_FOR_BUNDLES.items()
                   if params.get(k) not in (None, False) or params.get(k) is False and k not in _FLAGS_OFF_BY_DEFAULT]
        if params.get("out") is not None:
            refused.append("--out of rlexport train (use -o/--out DIR for the bundle folder)")
        if refused:
            raise UsageError(f"rlexport bundle does not take {', '.join(refused)}")
        options = {_CONFIG_FIELD.get(k, k): v for k, v in params.items() if k not in _NOT_FOR_BUNDLES and k != "out"}
        options["hidden"] = _hidden(options.get("hidden"))
        if from_run is not None:
            others = [k for k, v in options.items() if v is not None]
            if others:
                raise UsageError(f"--from bundles the run's own config; training options cannot be given with it (got {', '.join(others)})")
            cfg = None
        else:
            try:
                cfg = make_config(options.pop("algo") or "ppo", options.pop("env_id") or "CartPole-v1", **options)
            except ValueError as err:
                raise UsageError(str(err)) from None
        try:
            path = make_bundle(cfg, out, from_run=from_run, formats=tuple(formats or ()))
        except BundleError as err:
            raise UsageError(str(err)) from None
        console.print(f"[green]bundle[/] written to {path} ({path / 'bundle.json'})")
