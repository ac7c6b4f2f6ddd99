"""``rlexport export --format onnx|pt2|torchscript|aoti`` and ``rlexport to-onnx`` (its ONNX spelling).

One command, one option set: ``to-onnx`` is ``export --format onnx``. It builds a loss or an
estimator from a model preset or a training run (``rlexport.models.factory``), exports it and
prints where the artifact, its metadata and its golden sample went. With ``--grad`` it writes the
gradient graph of a loss (``rlexport.export.export_grad``), with ``--train-step`` its whole update
step with an optimizer (``rlexport.export.export_train_step``); both are ONNX graphs. Extending:
add a parameter to ``export_command`` and pass it on to the builder or the exporter.
"""

from __future__ import annotations

import inspect
import math
import sys
from collections import Counter
from pathlib import Path
from typing import Optional

import typer

from rlexport.cli.errors import UsageError, console, console_err
from rlexport.cli.options import check_dtype, check_non_negative, check_unit_interval
from rlexport.cli.tables import escape, shape_text

FORMAT_SUFFIX = {"onnx": ".onnx", "pt2": ".pt2", "torchscript": ".pt", "aoti": ".aoti.pt2"}
OPSETS = range(18, 24)  # what torch's ONNX exporter writes; below 18 it would silently write 18
OPTIMIZERS = ("adam", "adamw", "sgd")  # rlexport.optim (checked there too)
GOLDEN_STEPS = 3


def build_from_options(*, preset, loss, estimator, checkpoint, batch, time, seed, loss_options, gamma, lmbda, max_horizon):
    """Options -> ``rlexport.models.factory.build_module``; bad combinations become usage errors."""
    # heavy (torch, the objectives, gymnasium): imported when the command runs, so `--help` stays fast
    from rlexport.models.factory import BuildError, BuildSpec, build_module

    if loss is None and estimator is None:
        raise UsageError("name what to export: --loss clip-ppo|ppo|kl-ppo|a2c and/or --estimator gae|td0|td1|td-lambda|vtrace")
    options = {k: v for k, v in loss_options.items() if v is not None}
    if loss is None and options:
        raise UsageError(f"loss options {['--' + k.replace('_', '-') for k in options]} need --loss")
    est_options = {k: v for k, v in dict(gamma=gamma, lmbda=lmbda).items() if v is not None}
    if estimator is None and est_options:
        raise UsageError("--gamma/--lmbda configure an estimator: add --estimator")
    if max_horizon is not None and estimator is None:
        raise UsageError("--max-horizon bounds an estimator's horizon: add --estimator (alone, or with --loss for an in-graph estimator)")
    spec = BuildSpec(
        preset=preset, loss=loss, estimator=estimator, options=options, estimator_options=est_options,
        checkpoint=checkpoint, batch=batch, time=time, seed=seed, max_horizon=max_horizon,
    )
    try:
        return build_module(spec)
    except (BuildError, FileNotFoundError, KeyError, ValueError, TypeError) as err:
        raise UsageError(str(err).strip("'\"")) from err


def split_keys(out_keys: str | None) -> list[str] | None:
    if not out_keys:
        return None
    keys = [k.strip() for k in out_keys.split(",") if k.strip()]
    if not keys:
        raise UsageError("--out-keys is empty")
    return keys


def default_path(built, fmt: str, dtype: str, suffix: str = "") -> Path:
    return Path(built.spec.description + suffix + ("-" + dtype if dtype != "float32" else "") + FORMAT_SUFFIX[fmt])


def check_out_path(out: Path | None) -> None:
    """Refuse, before any export work, an output path that cannot become an artifact file."""
    if out is None:
        return
    if out.is_dir():
        raise UsageError(f"--out {out} is a directory; give the artifact's file name (e.g. {out / 'model.onnx'})")
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise UsageError(f"--out {out}: {parent} is a file, not a directory")


def run_export(fmt: str, built, out: Path | None, *, static: bool, dtype: str, out_keys, opset=None, verify=True) -> Path:
    # heavy (torch, onnx): imported when the command runs
    from rlexport import export
    from rlexport.export import ExportError

    path = out or default_path(built, fmt, dtype)
    kwargs = dict(dynamic=not static, dtype=dtype, output_names=split_keys(out_keys), verify=verify)
    fn = {"onnx": export.export_onnx, "pt2": export.export_program, "torchscript": export.export_torchscript, "aoti": export.export_aoti}[fmt]
    if fmt == "onnx":
        kwargs["opset"] = opset
    try:
        with console_err.status(f"exporting {built.spec.description} to {fmt} ..."):
            fn(built.module, built.example, path, **kwargs)
    except ExportError as err:
        console_err.print(f"[bold red]export failed:[/] {escape(str(err))}")
        sys.exit(1)  # the exported graph disagrees with eager: a real mismatch
    except (ValueError, TypeError) as err:
        raise UsageError(str(err)) from err
    report_written(path)
    return path


def report_written(path: Path) -> None:
    from rlexport.export import describe  # heavy (onnx, torch)

    info = describe(path)
    console.print(f"[green]wrote[/] {escape(str(path))} ({info['format']}, {info['size_bytes']} bytes)")
    for kind in ("inputs", "outputs"):
        items = ", ".join(f"{escape(n)}{shape_text(s.get('shape', []))}" for n, s in info[kind].items())
        console.print(f"  {kind}: {items}")
    if info.get("golden"):
        console.print(f"  golden sample: {escape(str(info['golden']['path']))} (cases {', '.join(info['golden']['cases'])}; verified)")


def horizon_time(max_horizon: int | None, time: int | None, batch: int) -> int | None:
    """The example horizon for ``--max-horizon N``: ``--time`` or the longest that the golden sample
    can check exactly. Every golden sample (forward, gradient, train step) also runs horizons other
    than the example's (``rlexport.export.plan.variant_sizes``), longer ones included."""
    if max_horizon is None:
        return time
    # heavy (torch): imported when the command runs
    from rlexport.export.plan import variant_sizes
    from rlexport.models.factory import DEFAULT_TIME, BuildError, max_steps_for_horizon

    try:
        bound = 2 ** max_steps_for_horizon(max_horizon)
    except BuildError as err:
        raise UsageError(f"--max-horizon {max_horizon}: give the longest horizon to export for, an integer >= 2") from err

    def longest(t: int) -> int:
        return max(s.get("time", t) for _, s in variant_sizes({"batch": batch, "time": t}))

    if time is None:
        fits = [t for t in range(2, DEFAULT_TIME + 1) if longest(t) <= bound]
        if not fits:
            need = longest(2)
            raise UsageError(
                f"--max-horizon {max_horizon}: the exported graph is exact up to T={bound}, but the golden sample checks "
                f"horizons up to {need} (the example's and longer ones); use --max-horizon {need} or more"
            )
        return fits[-1]
    if time < 2:
        raise UsageError(f"--time {time}: use an example horizon of at least 2")
    if longest(time) > bound:
        raise UsageError(
            f"--time {time} with --max-horizon {max_horizon}: the graph is exact up to T={bound}, but the golden sample "
            f"checks horizons up to {longest(time)}; lower --time or raise --max-horizon"
        )
    return time


# hyper-parameters each optimizer takes (rlexport.optim.OPTIMIZER_DEFAULTS holds their defaults)
OPTIMIZER_FLAGS = {
    "adam": ("lr", "max_grad_norm", "weight_decay", "beta1", "beta2", "eps"),
    "adamw": ("lr", "max_grad_norm", "weight_decay", "beta1", "beta2", "eps"),
    "sgd": ("lr", "max_grad_norm", "weight_decay", "momentum", "dampening", "nesterov"),
}


def optimizer_hyperparams(train_step: bool, optimizer: str | None, given: dict) -> tuple[str, dict]:
    """``(optimizer, {hyper-parameter: value})`` from the --train-step options, checked."""
    given = {k: v for k, v in given.items() if v is not None}
    flags = lambda keys: ", ".join("--" + k.replace("_", "-") for k in keys)  # noqa: E731
    if not train_step:
        if optimizer is not None or given:
            raise UsageError(f"{flags((['optimizer'] if optimizer else []) + list(given))} set hyper-parameters of the optimizer of --train-step: add --train-step")
        return "", {}
    optimizer = (optimizer or "adam").lower()
    if optimizer not in OPTIMIZER_FLAGS:
        raise UsageError(f"--optimizer {optimizer!r}: choose one of {list(OPTIMIZER_FLAGS)}")
    accepted = OPTIMIZER_FLAGS[optimizer]
    wrong = [k for k in given if k not in accepted]
    if wrong:
        raise UsageError(f"{flags(wrong)} is not a hyper-parameter of --optimizer {optimizer}; it takes {flags(accepted)}")
    for k in ("lr", "weight_decay", "eps", "momentum", "dampening"):
        if k in given and not (math.isfinite(given[k]) and given[k] >= 0):
            raise UsageError(f"--{k.replace('_', '-')} {given[k]}: must be a finite number >= 0")
    for k in ("beta1", "beta2"):
        if k in given and not 0 <= given[k] < 1:
            raise UsageError(f"--{k} {given[k]}: must be in [0, 1)")
    if "max_grad_norm" in given and not given["max_grad_norm"] > 0:
        raise UsageError(f"--max-grad-norm {given['max_grad_norm']}: must be > 0 (default inf: no clipping)")
    if given.get("nesterov"):
        if given.get("momentum", 0.0) <= 0 or given.get("dampening", 0) != 0:
            raise UsageError("--nesterov needs --momentum > 0 and --dampening 0 (torch.optim.SGD's rule)")
    return optimizer, given


def run_grad_export(mode: str, built, out: Path | None, *, static: bool, dtype: str, opset=None, verify=True,
                    optimizer: str = "adam", hyperparams=None, golden_steps: int = GOLDEN_STEPS) -> Path:
    """``export_grad`` (mode ``"grad"``) or ``export_train_step`` (mode ``"train_step"``) of a built loss."""
    # heavy (torch, onnx): imported when the command runs
    from rlexport.export import ExportError, export_grad, export_train_step

    if golden_steps < 1:
        raise UsageError(f"--golden-steps {golden_steps}: at least 1")
    path = out or default_path(built, "onnx", dtype, "-grad" if mode == "grad" else f"-{optimizer}-step")
    what = "gradient graph" if mode == "grad" else f"train step ({optimizer})"
    try:
        with console_err.status(f"exporting the {what} of {built.spec.description} to onnx ..."):
            if mode == "grad":
                meta = export_grad(built.module, built.example, path, dynamic=not static, dtype=dtype, opset=opset, verify=verify)
            else:
                meta = export_train_step(built.module, built.example, path, optimizer, hyperparams=hyperparams,
                                         dynamic=not static, dtype=dtype, opset=opset, verify=verify,
                                         golden_steps=golden_steps)
    except ExportError as err:
        console_err.print(f"[bold red]export failed:[/] {escape(str(err))}")
        sys.exit(1)  # the exported graph disagrees with eager: a real mismatch
    except (ValueError, TypeError) as err:
        raise UsageError(str(err)) from err
    report_graph(path, meta, verified=verify)
    return path


def report_graph(path: Path, meta: dict, *, verified: bool = True) -> None:
    """What a gradient or train-step export wrote: counts of inputs/outputs by role, state pairs, files."""
    from rlexport.artifact.paths import sidecar_paths

    kind = meta.get("kind")
    inputs, outputs = meta.get("inputs", {}), meta.get("outputs", {})
    size = path.stat().st_size if path.exists() else 0
    label = "train step, " + str(meta.get("optimizer")) if kind == "train_step" else "gradient graph"
    console.print(f"[green]wrote[/] {escape(str(path))} (onnx, {label}, {meta.get('dtype')}, {size} bytes)")

    def roles(specs):
        return Counter(v.get("role", "?") for v in specs.values())

    batch = ", ".join(f"{escape(n)}{shape_text(v.get('shape', []))}" for n, v in inputs.items() if v.get("role") in ("batch", "loss_state"))
    ins = ", ".join(f"{c} {r}" for r, c in roles(inputs).items() if r not in ("batch", "loss_state"))
    console.print(f"  inputs: {len(inputs)} ({ins}; batch: {batch})")
    outs = roles(outputs)
    loss_outs = [n for n, v in outputs.items() if v.get("role") in ("loss", "loss_aux")]
    other = ", ".join(f"{c} {r}" for r, c in outs.items() if r not in ("loss", "loss_aux"))
    console.print(f"  outputs: {len(outputs)} (loss outputs {', '.join(loss_outs)}; {other})")
    if kind == "train_step":
        state = meta.get("state", {})
        opt = str(meta.get("optimizer"))
        extra = [f"{i} -> {o}" for i, o in state.items() if not i.startswith("param.") and not i.startswith(opt + ".")]
        console.print(f"  state pairs: {len(state)} (param.* -> new.param.*, {opt}.* -> new.{opt}.*"
                      + (", " + ", ".join(extra) if extra else "") + ")")
        hp = ", ".join(f"{k}={v}" for k, v in meta.get("hyperparams", {}).items())
        console.print(f"  hyper-parameter defaults: {hp}")
    _, json_path, golden = sidecar_paths(path)
    if json_path.exists():
        console.print(f"  metadata: {escape(str(json_path))}")
    if golden.exists():
        console.print(f"  golden sample: {escape(str(golden))}" + ("; verified in ONNX Runtime" if verified else ""))
    # any other file the exporter wrote beside the artifact
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    for extra_file in sorted(path.parent.glob(stem + ".*")):
        if extra_file not in (path, json_path, golden) and not extra_file.name.startswith("."):
            console.print(f"  also: {escape(str(extra_file))}")


def export_command(
    format: str = typer.Option("onnx", "--format", "-f", help="The artifact format: onnx, pt2 (torch.export), torchscript (deprecated upstream) or aoti (AOTInductor)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="The model preset whose networks the loss or estimator uses: cartpole, pendulum or mujoco (not with a training run's --checkpoint)."),
    loss: Optional[str] = typer.Option(None, "--loss", help="The loss to export: clip-ppo, ppo, kl-ppo or a2c."),
    estimator: Optional[str] = typer.Option(None, "--estimator", help="The estimator to export: gae, td0, td1, td-lambda or vtrace. With --loss, the loss computes its advantages in-graph with it."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Trained weights: a training run (its folder or its checkpoints/latest.safetensors; the networks come from its config.json), or with --preset a torch.save'd {'actor': state_dict, 'critic': state_dict} (loaded weights-only, shape-checked)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="The artifact's path; default <preset>-<loss|estimator><suffix> in the current directory. X.json and X.golden/ are written beside it."),
    static: bool = typer.Option(False, "--static", help="Fix every shape to the example's (default: dynamic batch and time dims)."),
    opset: Optional[int] = typer.Option(None, "--opset", help="The ONNX opset, 18 to 23 (default 20, the exporter's); ONNX only."),
    dtype: str = typer.Option("float32", "--dtype", help="The dtype of the graph: float32 or float64."),
    out_keys: Optional[str] = typer.Option(None, "--out-keys", help="Keep only these outputs, comma-separated, in this order (forward graphs)."),
    batch: int = typer.Option(8, "--batch", help="The example batch size (at least 2)."),
    time: Optional[int] = typer.Option(None, "--time", help="The example horizon when there is a time axis (default 16, or what --max-horizon allows)."),
    seed: int = typer.Option(0, "--seed", help="The seed of the preset's weights and of the example."),
    clip_epsilon: Optional[float] = typer.Option(None, "--clip-epsilon", help="The Clip-PPO clipping epsilon, >= 0 (TorchRL's default 0.2)."),
    entropy_coeff: Optional[float] = typer.Option(None, "--entropy-coeff", help="The entropy bonus coefficient (TorchRL's default 0.01)."),
    critic_coeff: Optional[float] = typer.Option(None, "--critic-coeff", help="The critic loss coefficient (TorchRL's default 1.0)."),
    loss_critic_type: Optional[str] = typer.Option(None, "--loss-critic-type", help="The critic distance: l1, l2 or smooth_l1 (TorchRL's default smooth_l1)."),
    normalize_advantage: Optional[bool] = typer.Option(None, "--normalize-advantage/--no-normalize-advantage", help="Standardise the advantages in the loss (default off, as in TorchRL)."),
    entropy_bonus: Optional[bool] = typer.Option(None, "--entropy-bonus/--no-entropy-bonus", help="Add the entropy bonus (default on)."),
    gamma: Optional[float] = typer.Option(None, "--gamma", help="The discount of the estimator, in [0, 1] (TorchRL's default 0.99)."),
    lmbda: Optional[float] = typer.Option(None, "--lmbda", help="The lambda of GAE and TD(lambda), in [0, 1] (TorchRL's default 0.95)."),
    max_horizon: Optional[int] = typer.Option(
        None, "--max-horizon",
        help="The longest horizon T the exported estimator must compute exactly (an integer >= 2; with --estimator, alone or "
        "in-graph in a loss). It sets the estimator's max_steps = ceil(log2 N): the graph is exact up to 2**max_steps and "
        "returns NaN beyond. The default max_steps 20 serves T up to 1,048,576; a small horizon makes a smaller, faster "
        "graph. The example --time defaults to fit it.",
    ),
    no_verify: bool = typer.Option(False, "--no-verify", help="Write without first running the artifact at its golden cases."),
    grad: bool = typer.Option(False, "--grad", help="Write the gradient graph of the loss instead (ONNX; needs --loss): inputs param.*, buffer.* and the batch; outputs the loss outputs and grad.*."),
    train_step: bool = typer.Option(
        False, "--train-step",
        help="Write the whole update step of the loss as one graph instead (ONNX; needs --loss): loss, gradients, clip_grad_norm_ "
        "and a torch.optim step, with parameters and optimizer state as inputs and outputs. Files: X.onnx, X.json and X.golden/.",
    ),
    optimizer: Optional[str] = typer.Option(None, "--optimizer", help="With --train-step: adam (default), adamw or sgd, with torch.optim's semantics."),
    lr: Optional[float] = typer.Option(None, "--lr", help="With --train-step: the default learning rate (a graph input, hp.lr; torch.optim's default 1e-3)."),
    max_grad_norm: Optional[float] = typer.Option(None, "--max-grad-norm", help="With --train-step: the clip_grad_norm_ bound (default inf: no clipping)."),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="With --train-step: the weight decay (adam and sgd 0, adamw 1e-2 by default)."),
    beta1: Optional[float] = typer.Option(None, "--beta1", help="With --train-step --optimizer adam|adamw: beta1 (default 0.9)."),
    beta2: Optional[float] = typer.Option(None, "--beta2", help="With --train-step --optimizer adam|adamw: beta2 (default 0.999)."),
    eps: Optional[float] = typer.Option(None, "--eps", help="With --train-step --optimizer adam|adamw: eps (default 1e-8)."),
    momentum: Optional[float] = typer.Option(None, "--momentum", help="With --train-step --optimizer sgd: the momentum (default 0)."),
    dampening: Optional[float] = typer.Option(None, "--dampening", help="With --train-step --optimizer sgd: the dampening (default 0)."),
    nesterov: Optional[bool] = typer.Option(None, "--nesterov/--no-nesterov", help="With --train-step --optimizer sgd: use Nesterov momentum (default off)."),
    golden_steps: int = typer.Option(GOLDEN_STEPS, "--golden-steps", help="With --train-step: the successive steps in the golden sample (at least 1)."),
) -> None:
    """Export a loss or an estimator, built on a model preset's networks or on a training run's, to ONNX, .pt2, TorchScript or AOTInductor.

    Beside the artifact X: X.json (metadata) and X.golden/ (the golden sample). With --grad, the gradient graph of the loss; with --train-step, its whole optimizer update step (both ONNX).
    """
    if format not in FORMAT_SUFFIX:
        raise UsageError(f"--format {format!r}: choose one of {list(FORMAT_SUFFIX)}")
    check_dtype(dtype)
    check_out_path(out)
    if opset is not None:
        if format != "onnx":
            raise UsageError(f"--opset sets the ONNX opset; drop it for --format {format}")
        if opset not in OPSETS:
            raise UsageError(f"--opset {opset}: torch's ONNX exporter writes opsets {OPSETS.start} to {OPSETS.stop - 1}")
    check_non_negative("--clip-epsilon", clip_epsilon)
    check_non_negative("--entropy-coeff", entropy_coeff)
    check_non_negative("--critic-coeff", critic_coeff)
    check_unit_interval("--gamma", gamma)
    check_unit_interval("--lmbda", lmbda)
    if grad and train_step:
        raise UsageError("--grad and --train-step: choose one (a train step holds the gradients already)")
    mode = "grad" if grad else "train_step" if train_step else "forward"
    flag = "--grad" if grad else "--train-step"
    if mode != "forward":
        if format != "onnx":
            raise UsageError(f"{flag} writes an ONNX graph only; drop --format {format} (or use `rlexport to-onnx {flag}`)")
        if loss is None:
            raise UsageError(f"{flag} differentiates a loss: add --loss clip-ppo|ppo|kl-ppo|a2c"
                             + (" (--estimator then computes its advantages in-graph)" if estimator else ""))
        if out_keys:
            raise UsageError(
                f"--out-keys selects outputs of a forward graph; a {flag} graph returns every loss output (its total loss "
                "is the sum of the loss_* outputs), so it cannot be combined with --out-keys"
            )
    hyperparams = dict(lr=lr, max_grad_norm=max_grad_norm, weight_decay=weight_decay, beta1=beta1, beta2=beta2, eps=eps,
                       momentum=momentum, dampening=dampening, nesterov=nesterov)
    optimizer, hp = optimizer_hyperparams(mode == "train_step", optimizer, hyperparams)
    if mode != "train_step" and golden_steps != GOLDEN_STEPS:
        raise UsageError("--golden-steps counts the steps of a --train-step golden sample: add --train-step")
    time = horizon_time(max_horizon, time, batch)
    loss_options = dict(clip_epsilon=clip_epsilon, entropy_coeff=entropy_coeff, critic_coeff=critic_coeff,
                        loss_critic_type=loss_critic_type, normalize_advantage=normalize_advantage, entropy_bonus=entropy_bonus)
    built = build_from_options(preset=preset, loss=loss, estimator=estimator, checkpoint=checkpoint, batch=batch, time=time,
                               seed=seed, loss_options=loss_options, gamma=gamma, lmbda=lmbda, max_horizon=max_horizon)
    if mode == "forward":
        run_export(format, built, out, static=static, dtype=dtype, out_keys=out_keys, opset=opset, verify=not no_verify)
    else:
        run_grad_export(mode, built, out, static=static, dtype=dtype, opset=opset, verify=not no_verify,
                        optimizer=optimizer, hyperparams=hp, golden_steps=golden_steps)
    if max_horizon is not None:
        steps = built.module.max_steps if hasattr(built.module, "max_steps") else built.module.value_estimator.max_steps
        console.print(f"  estimator: max_steps {steps}, exact for horizons up to {2 ** steps} (NaN beyond)")


def _onnx_spelling(command):
    """``command`` with ``--format`` fixed to onnx: the same options, declared once."""
    signature = inspect.signature(command)

    def to_onnx(**options) -> None:
        command(format="onnx", **options)

    to_onnx.__signature__ = signature.replace(parameters=[p for n, p in signature.parameters.items() if n != "format"])
    to_onnx.__annotations__ = {k: v for k, v in command.__annotations__.items() if k != "format"}
    to_onnx.__doc__ = ("Export a loss or an estimator to ONNX: `rlexport export --format onnx`, with the same options.\n\n"
                       "Beside the artifact X: X.json (metadata) and X.golden/ (the golden sample). With --grad, the gradient "
                       "graph of the loss; with --train-step, its whole optimizer update step.")
    return to_onnx


def register(app: typer.Typer) -> None:
    app.command("to-onnx")(_onnx_spelling(export_command))
    app.command("export")(export_command)
