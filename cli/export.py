"""``rlexport to-onnx`` and ``rlexport export --format pt2|torchscript|aoti``.

Both build a loss or an estimator from a model preset (``rlexport.export.build``), export it and
print where the artifact, its metadata and its golden sample went. ``to-onnx --grad`` writes the
gradient graph of a loss (``rlexport.export.export_grad``), ``to-onnx --train-step`` its whole
update step with an optimizer (``rlexport.export.export_train_step``). Extending: add an option to
``_export_command`` and pass it on to the builder or the exporter; the option groups below are
shared by both commands.
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
MAX_HORIZON = typer.Option(
    None, "--max-horizon",
    help="Longest horizon T the exported estimator must compute exactly (an integer >= 2; with --estimator, alone or "
    "in-graph in a loss). Sets the estimator's max_steps = ceil(log2 N): the graph is exact up to 2**max_steps and "
    "returns NaN beyond. Default max_steps 20 (T up to 1,048,576) costs ~25 s+ of export time; a small horizon "
    "exports in a few seconds. The example --time defaults to fit it.",
)
# -- gradient and train-step graphs (ONNX only)
GRAD = typer.Option(False, "--grad", help="Write the gradient graph of the loss: inputs param.*, buffer.*, the batch; outputs the loss outputs and grad.* (needs --loss).")
TRAIN_STEP = typer.Option(
    False, "--train-step",
    help="Write the whole update step of the loss as one graph: loss, gradients, clip_grad_norm_ and a torch.optim step; "
    "parameters and optimizer state are inputs and outputs (needs --loss).",
)
OPTIMIZER = typer.Option(None, "--optimizer", help="With --train-step: adam (default), adamw or sgd (torch.optim semantics).")
LR = typer.Option(None, "--lr", help="With --train-step: default learning rate (a graph input, hp.lr; torch.optim's default 1e-3).")
MAX_GRAD_NORM = typer.Option(None, "--max-grad-norm", help="With --train-step: clip_grad_norm_ bound (default inf: no clipping).")
WEIGHT_DECAY = typer.Option(None, "--weight-decay", help="With --train-step: weight decay (adam/sgd default 0, adamw 1e-2).")
BETA1 = typer.Option(None, "--beta1", help="With --train-step --optimizer adam|adamw: beta1 (default 0.9).")
BETA2 = typer.Option(None, "--beta2", help="With --train-step --optimizer adam|adamw: beta2 (default 0.999).")
EPS = typer.Option(None, "--eps", help="With --train-step --optimizer adam|adamw: eps (default 1e-8).")
MOMENTUM = typer.Option(None, "--momentum", help="With --train-step --optimizer sgd: momentum (default 0).")
DAMPENING = typer.Option(None, "--dampening", help="With --train-step --optimizer sgd: dampening (default 0).")
NESTEROV = typer.Option(None, "--nesterov/--no-nesterov", help="With --train-step --optimizer sgd: Nesterov momentum.")
GOLDEN_STEPS = typer.Option(3, "--golden-steps", help="With --train-step: successive steps in the golden sample (>= 1).")


def build_from_options(*, preset, loss, estimator, checkpoint, batch, time, seed, clip_epsilon=None, entropy_coeff=None,
                       critic_coeff=None, loss_critic_type=None, normalize_advantage=None, entropy_bonus=None,
                       gamma=None, lmbda=None, max_horizon=None):
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
    if max_horizon is not None and estimator is None:
        raise UsageError("--max-horizon bounds an estimator's horizon: add --estimator (alone, or with --loss for an in-graph estimator)")
    spec = BuildSpec(
        preset=preset, loss=loss, estimator=estimator, options=options, estimator_options=est_options,
        checkpoint=checkpoint, batch=batch, time=time, seed=seed, max_horizon=max_horizon,
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
    from rlexport.export.plan import ExportError

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


def horizon_time(max_horizon: int | None, time: int | None, batch: int, *, forward: bool) -> int | None:
    """The example horizon for ``--max-horizon N``: ``--time`` or the longest that the golden sample
    can check exactly. Every golden sample (forward, grad, train step) also runs a longer horizon
    than the example (``rlexport.export.plan.variant_sizes``)."""
    if max_horizon is None:
        return time
    from rlexport.export.build import DEFAULT_TIME, BuildError, max_steps_for_horizon

    try:
        bound = 2 ** max_steps_for_horizon(max_horizon)
    except BuildError as err:
        raise UsageError(f"--max-horizon {max_horizon}: give the longest horizon to export for, an integer >= 2") from err

    def longest(t: int) -> int:
        from rlexport.export.plan import variant_sizes

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


def optimizer_hyperparams(train_step: bool, optimizer: str | None, given: dict) -> tuple[str, dict]:
    """``(optimizer, {hyper-parameter: value})`` from the --train-step options, checked."""
    from rlexport.optim import OPTIMIZER_DEFAULTS

    given = {k: v for k, v in given.items() if v is not None}
    flags = lambda keys: ", ".join("--" + k.replace("_", "-") for k in keys)  # noqa: E731
    if not train_step:
        if optimizer is not None or given:
            raise UsageError(f"{flags((['optimizer'] if optimizer else []) + list(given))} set hyper-parameters of the optimizer of --train-step: add --train-step")
        return "", {}
    optimizer = (optimizer or "adam").lower()
    if optimizer not in OPTIMIZER_DEFAULTS:
        raise UsageError(f"--optimizer {optimizer!r}: choose one of {list(OPTIMIZER_DEFAULTS)}")
    accepted = OPTIMIZER_DEFAULTS[optimizer]
    wrong = [k for k in given if k not in accepted]
    if wrong:
        raise UsageError(f"{flags(wrong)} is not a hyper-parameter of --optimizer {optimizer}; it takes {flags(accepted)}")
    for k in ("lr", "weight_decay", "eps", "momentum", "dampening"):
        if k in given and not given[k] >= 0:
            raise UsageError(f"--{k.replace('_', '-')} {given[k]}: must be >= 0")
    for k in ("beta1", "beta2"):
        if k in given and not 0 <= given[k] < 1:
            raise UsageError(f"--{k} {given[k]}: must be in [0, 1)")
    if "max_grad_norm" in given and not given["max_grad_norm"] > 0:
        raise UsageError(f"--max-grad-norm {given['max_grad_norm']}: must be > 0 (default inf: no clipping)")
    if given.get("nesterov"):
        momentum = given.get("momentum", accepted["momentum"])
        if momentum <= 0 or given.get("dampening", 0) != 0:
            raise UsageError("--nesterov needs --momentum > 0 and --dampening 0 (torch.optim.SGD's rule)")
    return optimizer, given


def run_grad_export(mode: str, built, out: Path | None, *, static: bool, dtype: str, opset=None, verify=True,
                    optimizer: str = "adam", hyperparams=None, golden_steps: int = 3) -> Path:
    """``export_grad`` (mode ``"grad"``) or ``export_train_step`` (mode ``"train_step"``) of a built loss."""
    from rlexport.export import export_grad, export_train_step
    from rlexport.export.plan import ExportError

    if dtype not in ("float32", "float64"):
        raise UsageError(f"--dtype {dtype!r}: choose float32 or float64")
    if golden_steps < 1:
        raise UsageError(f"--golden-steps {golden_steps}: at least 1")
    suffix = "-grad" if mode == "grad" else f"-{optimizer}-step"
    path = out or Path(built.spec.description + suffix + ("-" + dtype if dtype != "float32" else "") + ".onnx")
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
        console_err.print(f"[bold red]export failed:[/] {err}")
        sys.exit(1)  # see cli/validate.py
    except (ValueError, TypeError) as err:
        raise UsageError(str(err)) from err
    report_graph(path, meta, verified=verify)
    return path


def _shape(spec) -> str:
    from rich.markup import escape

    return escape("[" + ", ".join(str(d) for d in spec.get("shape", [])) + "]")


def report_graph(path: Path, meta: dict, *, verified: bool = True) -> None:
    """What a gradient or train-step export wrote: counts of inputs/outputs by role, state pairs."""
    from collections import Counter

    from rlexport.artifact.paths import sidecar_paths

    kind = meta.get("kind")
    inputs, outputs = meta.get("inputs", {}), meta.get("outputs", {})
    size = path.stat().st_size if path.exists() else 0
    label = "train step, " + str(meta.get("optimizer")) if kind == "train_step" else "gradient graph"
    console.print(f"[green]wrote[/] {path} (onnx, {label}, {meta.get('dtype')}, {size} bytes)")

    def roles(specs):
        return Counter(v.get("role", "?") for v in specs.values())

    batch = ", ".join(f"{n}{_shape(v)}" for n, v in inputs.items() if v.get("role") in ("batch", "loss_state"))
    ins = ", ".join(f"{c} {r}" for r, c in roles(inputs).items() if r not in ("batch", "loss_state"))
    console.print(f"  inputs: {len(inputs)} ({ins}; batch: {batch})")
    outs = roles(outputs)
    loss_outs = [n for n, v in outputs.items() if v.get("role") in ("loss", "loss_aux")]
    other = ", ".join(f"{c} {r}" for r, c in outs.items() if r not in ("loss", "loss_aux"))
    console.print(f"  outputs: {len(outputs)} (loss outputs {', '.join(loss_outs)}; {other})")
    if kind == "train_step":
        state = meta.get("state", {})
        extra = [f"{i} -> {o}" for i, o in state.items() if not i.startswith("param.") and not i.startswith(str(meta.get("optimizer")) + ".")]
        console.print(f"  state pairs: {len(state)} (param.* -> new.param.*, {meta.get('optimizer')}.* -> new.{meta.get('optimizer')}.*"
                      + (", " + ", ".join(extra) if extra else "") + ")")
        hp = ", ".join(f"{k}={v}" for k, v in meta.get("hyperparams", {}).items())
        console.print(f"  hyper-parameter defaults: {hp}")
    golden = sidecar_paths(path)[2]
    if golden.exists():
        console.print(f"  golden sample: {golden}" + ("; verified in ONNX Runtime" if verified else ""))


def _export_command(fmt: str, *, preset, loss, estimator, checkpoint, out, static, opset, dtype, out_keys, batch, time,
                    seed, clip_epsilon, entropy_coeff, critic_coeff, loss_critic_type, normalize_advantage,
                    entropy_bonus, gamma, lmbda, no_verify, max_horizon, grad, train_step, optimizer, hyperparams,
                    golden_steps) -> None:
    """Everything ``to-onnx`` and ``export`` do, checks first (nothing is built on a bad combination)."""
    if grad and train_step:
        raise UsageError("--grad and --train-step: choose one (a train step holds the gradients already)")
    mode = "grad" if grad else "train_step" if train_step else "forward"
    flag = "--grad" if grad else "--train-step"
    if mode != "forward":
        if fmt != "onnx":
            raise UsageError(f"{flag} writes an ONNX graph only; drop --format {fmt} (use `rlexport to-onnx {flag}`)")
        if loss is None:
            raise UsageError(f"{flag} differentiates a loss: add --loss clip-ppo|ppo|kl-ppo|a2c"
                             + (" (--estimator then computes its advantages in-graph)" if estimator else ""))
        if out_keys:
            raise UsageError(
                f"--out-keys selects outputs of a forward graph; a {flag} graph returns every loss output (its total loss "
                "is the sum of the loss_* outputs), so it cannot be combined with --out-keys"
            )
    optimizer, hp = optimizer_hyperparams(mode == "train_step", optimizer, hyperparams)
    if mode != "train_step" and golden_steps != 3:
        raise UsageError("--golden-steps counts the steps of a --train-step golden sample: add --train-step")
    time = horizon_time(max_horizon, time, batch, forward=mode == "forward")
    built = build_from_options(
        preset=preset, loss=loss, estimator=estimator, checkpoint=checkpoint, batch=batch, time=time, seed=seed,
        clip_epsilon=clip_epsilon, entropy_coeff=entropy_coeff, critic_coeff=critic_coeff,
        loss_critic_type=loss_critic_type, normalize_advantage=normalize_advantage, entropy_bonus=entropy_bonus,
        gamma=gamma, lmbda=lmbda, max_horizon=max_horizon,
    )
    if mode == "forward":
        run_export(fmt, built, out, static=static, dtype=dtype, out_keys=out_keys, opset=opset, verify=not no_verify)
    else:
        run_grad_export(mode, built, out, static=static, dtype=dtype, opset=opset, verify=not no_verify,
                        optimizer=optimizer, hyperparams=hp, golden_steps=golden_steps)
    if max_horizon is not None:
        steps = built.module.max_steps if hasattr(built.module, "max_steps") else built.module.value_estimator.max_steps
        console.print(f"  estimator: max_steps {steps}, exact for horizons up to {2 ** steps} (NaN beyond)")


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
        max_horizon: Optional[int] = MAX_HORIZON,
        no_verify: bool = NO_VERIFY,
        grad: bool = GRAD,
        train_step: bool = TRAIN_STEP,
        optimizer: Optional[str] = OPTIMIZER,
        lr: Optional[float] = LR,
        max_grad_norm: Optional[float] = MAX_GRAD_NORM,
        weight_decay: Optional[float] = WEIGHT_DECAY,
        beta1: Optional[float] = BETA1,
        beta2: Optional[float] = BETA2,
        eps: Optional[float] = EPS,
        momentum: Optional[float] = MOMENTUM,
        dampening: Optional[float] = DAMPENING,
        nesterov: Optional[bool] = NESTEROV,
        golden_steps: int = GOLDEN_STEPS,
    ) -> None:
        """Export a loss or an estimator of a model preset to ONNX (+ X.json, X.golden/); with --grad its gradient
        graph, with --train-step its whole optimizer update step."""
        _export_command(
            "onnx", preset=preset, loss=loss, estimator=estimator, checkpoint=checkpoint, out=out, static=static,
            opset=opset, dtype=dtype, out_keys=out_keys, batch=batch, time=time, seed=seed, clip_epsilon=clip_epsilon,
            entropy_coeff=entropy_coeff, critic_coeff=critic_coeff, loss_critic_type=loss_critic_type,
            normalize_advantage=normalize_advantage, entropy_bonus=entropy_bonus, gamma=gamma, lmbda=lmbda,
            no_verify=no_verify, max_horizon=max_horizon, grad=grad, train_step=train_step, optimizer=optimizer,
            hyperparams=dict(lr=lr, max_grad_norm=max_grad_norm, weight_decay=weight_decay, beta1=beta1, beta2=beta2,
                             eps=eps, momentum=momentum, dampening=dampening, nesterov=nesterov),
            golden_steps=golden_steps,
        )

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
        max_horizon: Optional[int] = MAX_HORIZON,
        no_verify: bool = NO_VERIFY,
        grad: bool = typer.Option(False, "--grad", help="Gradient graph: ONNX only (--format onnx, or `rlexport to-onnx --grad`)."),
        train_step: bool = typer.Option(False, "--train-step", help="Train-step graph: ONNX only (--format onnx, or `rlexport to-onnx --train-step`)."),
    ) -> None:
        """Export a loss or an estimator of a model preset to .pt2, TorchScript or AOTInductor."""
        if format not in ("pt2", "torchscript", "aoti", "onnx"):
            raise UsageError(f"--format {format!r}: choose pt2, torchscript or aoti (or onnx)")
        _export_command(
            format, preset=preset, loss=loss, estimator=estimator, checkpoint=checkpoint, out=out, static=static,
            opset=None, dtype=dtype, out_keys=out_keys, batch=batch, time=time, seed=seed, clip_epsilon=clip_epsilon,
            entropy_coeff=entropy_coeff, critic_coeff=critic_coeff, loss_critic_type=loss_critic_type,
            normalize_advantage=normalize_advantage, entropy_bonus=entropy_bonus, gamma=gamma, lmbda=lmbda,
            no_verify=no_verify, max_horizon=max_horizon, grad=grad, train_step=train_step, optimizer=None,
            hyperparams={}, golden_steps=3,
        )
