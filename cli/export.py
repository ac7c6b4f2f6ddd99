"""``rlexport to-onnx`` and ``rlexport export --format pt2|torchscript|aoti``.

Both build a loss or an estimator from a model preset (``rlexport.export.build``), export it and
print where the artifact, its metadata and its golden sample went. Extending: add an option to
``to_onnx`` and pass it on to the builder or the exporter; the option groups below are shared.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from rlexport.cli.errors import UsageError, console, console_err

FORMAT_SUFFIX = {"onnx": ".onnx", "pt2": ".pt2", "torchscript": ".pt", "aoti": ".aoti.pt2"}

# -- options shared by to-onnx and export
PRESET = typer.Option(..., "--preset", help="Model preset: cartpole, pendulum or mujoco.")
LOSS = typer.Option(None, "--loss", help="Loss: clip-ppo, ppo, kl-ppo or a2c.")
ESTIMATOR = typer.Option(
    None, "--estimator", help="Estimator: gae, td0, td1, td-lambda or vtrace. With --loss: the loss computes advantages in-graph with it."
)
CHECKPOINT = typer.Option(None, "--checkpoint", help="torch.save'd {'actor': state_dict, 'critic': state_dict}, loaded weights_only and shape-checked.")
OUT = typer.Option(None, "--out", "-o", help="Artifact path (default: <preset>-<loss|estimator><suffix> here).")
STATIC = typer.Option(False, "--static", help="Fix every shape to the example's (default: dynamic batch and time dims).")
DTYPE = typer.Option("float32", "--dtype", help="float32 or float64.")
OUT_KEYS = typer.Option(None, "--out-keys", help="Keep only these outputs, comma-separated, in this order.")
BATCH = typer.Option(8, "--batch", help="Example batch size (>= 2).")
TIME = typer.Option(None, "--time", help="Example horizon when there is a time axis (default 16).")
SEED = typer.Option(0, "--seed", help="Seed of the preset's weights and the example.")
CLIP_EPS = typer.Option(None, "--clip-epsilon", help="Clip-PPO clipping epsilon.")
ENTROPY = typer.Option(None, "--entropy-coeff", help="Entropy bonus coefficient.")
CRITIC = typer.Option(None, "--critic-coeff", help="Critic loss coefficient.")
CRITIC_TYPE = typer.Option(None, "--loss-critic-type", help="l1, l2 or smooth_l1.")
NORM_ADV = typer.Option(None, "--normalize-advantage/--no-normalize-advantage", help="Normalise advantages in the loss.")
ENTROPY_BONUS = typer.Option(None, "--entropy-bonus/--no-entropy-bonus", help="Add the entropy bonus.")
GAMMA = typer.Option(None, "--gamma", help="Discount of the estimator.")
LMBDA = typer.Option(None, "--lmbda", help="GAE / TD(lambda) lambda.")
NO_VERIFY = typer.Option(False, "--no-verify", help="Write without running the artifact at the golden cases first.")


def build_from_options(*, preset, loss, estimator, checkpoint, batch, time, seed, clip_epsilon=None, entropy_coeff=None,
                       critic_coeff=None, loss_critic_type=None, normalize_advantage=None, entropy_bonus=None,
                       gamma=None, lmbda=None):
    """Options → ``rlexport.export.build.build_module``; bad combinations become usage errors."""
    from rlexport.export.build import BuildError, BuildSpec, build_module

    if loss is None and estimator is None:
        raise UsageError("name what to export: --loss clip-ppo|ppo|kl-ppo|a2c and/or --estimator gae|td0|td1|td-lambda|vtrace")
    options = {
        k: v
        for k, v in dict(
            clip_epsilon=clip_epsilon,
            entropy_coeff=entropy_coeff,
            critic_coeff=critic_coeff,
            loss_critic_type=loss_critic_type,
            normalize_advantage=normalize_advantage,
            entropy_bonus=entropy_bonus,
        ).items()
        if v is not None
    }
    if loss is None and options:
        raise UsageError(f"loss options {['--' + k.replace('_', '-') for k in options]} need --loss")
    est_options = {k: v for k, v in dict(gamma=gamma, lmbda=lmbda).items() if v is not None}
    if estimator is None and est_options:
        raise UsageError("--gamma/--lmbda configure an estimator: add --estimator")
    spec = BuildSpec(
        preset=preset, loss=loss, estimator=estimator, options=options, estimator_options=est_options,
        checkpoint=checkpoint, batch=batch, time=time, seed=seed,
    )
    try:
        return build_module(spec)
    except (BuildError, FileNotFoundError, KeyError, ValueError, TypeError) as err:
        raise UsageError(str(err)) from err


def split_keys(out_keys: str | None) -> list[str] | None:
    if not out_keys:
        return None
    keys = [k.strip() for k in out_keys.split(",") if k.strip()]
    if not keys:
        raise UsageError("--out-keys is empty")
    return keys


def run_export(fmt: str, built, out: Path | None, *, static: bool, dtype: str, out_keys, opset=None, verify=True) -> Path:
    from rlexport import export
    from rlexport.export.common import ExportError

    if dtype not in ("float32", "float64"):
        raise UsageError(f"--dtype {dtype!r}: choose float32 or float64")
    path = out or Path(built.spec.description + ("-" + dtype if dtype != "float32" else "") + FORMAT_SUFFIX[fmt])
    kwargs = dict(dynamic=not static, dtype=dtype, output_names=split_keys(out_keys), verify=verify)
    fn = {"onnx": export.export_onnx, "pt2": export.export_program, "torchscript": export.export_torchscript, "aoti": export.export_aoti}[fmt]
    if fmt == "onnx":
        kwargs["opset"] = opset
    try:
        with console_err.status(f"exporting {built.spec.description} to {fmt} ..."):
            fn(built.module, built.example, path, **kwargs)
    except ExportError as err:
        console_err.print(f"[bold red]export failed:[/] {err}")
        sys.exit(1)  # see cli/validate.py
    except (ValueError, TypeError) as err:
        raise UsageError(str(err)) from err
    report_written(path)
    return path


def report_written(path: Path) -> None:
    from rlexport.export import describe

    info = describe(path)
    console.print(f"[green]wrote[/] {path} ({info['format']}, {info['size_bytes']} bytes)")
    for kind in ("inputs", "outputs"):
        items = ", ".join(f"{n}{list(s.get('shape', []))}" for n, s in info[kind].items())
        console.print(f"  {kind}: {items}")
    if info.get("golden"):
        console.print(f"  golden sample: {info['golden']['path']} (cases {', '.join(info['golden']['cases'])}; verified)")


def register(app: typer.Typer) -> None:
    @app.command("to-onnx")
    def to_onnx(
        preset: str = PRESET,
        loss: Optional[str] = LOSS,
        estimator: Optional[str] = ESTIMATOR,
        checkpoint: Optional[Path] = CHECKPOINT,
        out: Optional[Path] = OUT,
        static: bool = STATIC,
        opset: Optional[int] = typer.Option(None, "--opset", help="ONNX opset (default: the exporter's, 20)."),
        dtype: str = DTYPE,
        out_keys: Optional[str] = OUT_KEYS,
        batch: int = BATCH,
        time: Optional[int] = TIME,
        seed: int = SEED,
        clip_epsilon: Optional[float] = CLIP_EPS,
        entropy_coeff: Optional[float] = ENTROPY,
        critic_coeff: Optional[float] = CRITIC,
        loss_critic_type: Optional[str] = CRITIC_TYPE,
        normalize_advantage: Optional[bool] = NORM_ADV,
        entropy_bonus: Optional[bool] = ENTROPY_BONUS,
        gamma: Optional[float] = GAMMA,
        lmbda: Optional[float] = LMBDA,
        no_verify: bool = NO_VERIFY,
    ) -> None:
        """Export a loss or an estimator of a model preset to ONNX (+ X.json, X.golden/)."""
        built = build_from_options(
            preset=preset, loss=loss, estimator=estimator, checkpoint=checkpoint, batch=batch, time=time, seed=seed,
            clip_epsilon=clip_epsilon, entropy_coeff=entropy_coeff, critic_coeff=critic_coeff,
            loss_critic_type=loss_critic_type, normalize_advantage=normalize_advantage, entropy_bonus=entropy_bonus,
            gamma=gamma, lmbda=lmbda,
        )
        run_export("onnx", built, out, static=static, dtype=dtype, out_keys=out_keys, opset=opset, verify=not no_verify)

    @app.command("export")
    def export_cmd(
        format: str = typer.Option(..., "--format", "-f", help="pt2 (torch.export), torchscript (deprecated upstream) or aoti (AOTInductor)."),
        preset: str = PRESET,
        loss: Optional[str] = LOSS,
        estimator: Optional[str] = ESTIMATOR,
        checkpoint: Optional[Path] = CHECKPOINT,
        out: Optional[Path] = OUT,
        static: bool = STATIC,
        dtype: str = DTYPE,
        out_keys: Optional[str] = OUT_KEYS,
        batch: int = BATCH,
        time: Optional[int] = TIME,
        seed: int = SEED,
        clip_epsilon: Optional[float] = CLIP_EPS,
        entropy_coeff: Optional[float] = ENTROPY,
        critic_coeff: Optional[float] = CRITIC,
        loss_critic_type: Optional[str] = CRITIC_TYPE,
        normalize_advantage: Optional[bool] = NORM_ADV,
        entropy_bonus: Optional[bool] = ENTROPY_BONUS,
        gamma: Optional[float] = GAMMA,
        lmbda: Optional[float] = LMBDA,
        no_verify: bool = NO_VERIFY,
    ) -> None:
        """Export a loss or an estimator of a model preset to .pt2, TorchScript or AOTInductor."""
        if format not in ("pt2", "torchscript", "aoti", "onnx"):
            raise UsageError(f"--format {format!r}: choose pt2, torchscript or aoti (or onnx)")
        built = build_from_options(
            preset=preset, loss=loss, estimator=estimator, checkpoint=checkpoint, batch=batch, time=time, seed=seed,
            clip_epsilon=clip_epsilon, entropy_coeff=entropy_coeff, critic_coeff=critic_coeff,
            loss_critic_type=loss_critic_type, normalize_advantage=normalize_advantage, entropy_bonus=entropy_bonus,
            gamma=gamma, lmbda=lmbda,
        )
        run_export(format, built, out, static=static, dtype=dtype, out_keys=out_keys, verify=not no_verify)
