"""``rlexport train``: PPO / A2C on a Gymnasium environment, torch or ONNX Runtime updates.

With no options at all it runs the demo: CartPole-v1 PPO for 50k steps ending in exported and
validated artifacts (``rlexport.train.run_demo``).
"""

from __future__ import annotations

import math
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from rlexport.cli.errors import UsageError, console, console_err


def _hidden(text: str | None):
    if text is None:
        return None
    try:
        sizes = tuple(int(h) for h in text.split(",") if h.strip())
    except ValueError:
        raise UsageError(f"--hidden must be comma-separated layer sizes like 64,64, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise UsageError(f"--hidden must be comma-separated positive layer sizes, got {text!r}")
    return sizes


# option name -> flag, where they differ (for messages that name what the user typed)
_FLAGS = {"env_id": "--env", "learning_rate": "--learning-rate"}


def _check_box_distribution(cfg) -> None:
    """``--box-distribution`` applies to Box action spaces; on a Discrete one it would be ignored."""
    # heavy (gymnasium): imported only when --box-distribution is given
    from rlexport.train.envs import EnvError, describe_spaces

    try:
        _, action_space = describe_spaces(cfg.env_id)
    except EnvError as err:
        raise UsageError(str(err)) from None
    if not hasattr(action_space, "low"):
        raise UsageError(f"--box-distribution {cfg.box_distribution}: {cfg.env_id} has a {type(action_space).__name__} "
                         "action space; the option applies to Box actions only")


class _Progress:
    """A rich progress bar that fits 80 columns: steps done of total, steps/s, the mean return of the
    last 20 episodes and the time left; the losses and the elapsed time too on terminals of 120
    columns or more. ``label``: a short name (algorithm/engine); the full title prints above it."""

    def __init__(self, total: int, start: int, label: str, enabled: bool = True):
        columns = [TextColumn("[bold]{task.description}"), BarColumn(bar_width=12), MofNCompleteColumn(),
                   TextColumn("{task.fields[sps]}/s"), TextColumn("return {task.fields[ret]}"),
                   TextColumn("ETA"), TimeRemainingColumn()]
        if console.width >= 120:
            columns += [TimeElapsedColumn(), TextColumn("[dim]{task.fields[losses]}")]
        self.enabled = enabled
        self.progress = Progress(*columns, console=console, transient=False, disable=not enabled)
        self.task = self.progress.add_task(escape(label), total=total, completed=start, sps="-", ret="-", losses="")

    # The bar starts at the first update, so that input errors (raised before) print alone.
    def __enter__(self):
        self.started = False
        return self

    def __exit__(self, *exc):
        if self.started:
            return self.progress.__exit__(*exc)
        return None

    def __call__(self, trainer, row) -> None:
        if not self.started:
            self.started = True
            self.progress.__enter__()
        ret = row.get("mean_return_20", float("nan"))
        losses = " ".join(
            f"{k.replace('loss_', '')}={row[k]:.3g}" for k in ("loss_objective", "loss_critic", "loss_entropy") if k in row
        )
        self.progress.update(
            self.task, completed=row["global_step"], sps=f"{row['steps_per_s']:.0f}",
            ret="-" if ret is None or math.isnan(ret) else f"{ret:.1f}", losses=losses,
        )


def _run(cfg=None, resume=None, total_steps=None, quiet=False, cache=True):
    # heavy (torch, gymnasium): imported when the command runs, so that `rlexport --help` stays fast
    from rlexport.train import TrainError, TrainInterrupted, train
    from rlexport.train.loop import _read_resume

    try:
        if resume is not None:
            c, _, meta = _read_resume(Path(resume))
            if meta.get("fallback"):
                console_err.print(f"[yellow]warning:[/] {escape(meta['fallback'])}", highlight=False, soft_wrap=True)
            total = int(total_steps or c.total_steps)
            start, label = int(meta["global_step"]), f"{c.algo}/{c.engine}"
            title = f"resuming {c.env_id} {c.algo} ({c.engine} engine) at step {start} of {total} in {resume}"
        else:
            total, start, label = cfg.total_steps, 0, f"{cfg.algo}/{cfg.engine}"
            title = f"training {cfg.env_id} {cfg.algo} ({cfg.engine} engine) for {total} steps"

        def print_title(*_):  # once the run folder is locked and read: a refusal prints alone
            if not quiet:
                console.print(escape(title), highlight=False, soft_wrap=True)

        with _Progress(total, start, label, enabled=not quiet) as bar:
            result = train(cfg, resume=resume, total_steps=total_steps, on_update=bar, on_start=print_title,
                           cache=cache)
    except TrainInterrupted as err:  # the resume command on one line, never wrapped
        console_err.print(f"[yellow]{escape(str(err))}[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    except TrainError as err:
        raise UsageError(str(err)) from None
    ret = "n/a" if result.mean_return is None else f"{result.mean_return:.1f}"
    console.print(
        f"[green]done[/] {result.global_step} steps, mean return (last 20 episodes) {ret}, "
        f"{result.steps_per_s:.0f} steps/s -> {result.run_dir}"
    )
    run = result.run_dir
    console.print(f"learning curve: {escape(str(run / 'learning_curve.png'))}")
    if result.validation_passed is not None:
        verdict = "[green]passed[/]" if result.validation_passed else "[red]FAILED[/]"
        console.print(f"artifacts in {escape(str(run / 'artifacts'))}; validation {verdict} ({escape(str(run / 'validation.json'))})")
        console.print(escape(f"next: rlexport evaluate {run}  |  rlexport validate {run / 'artifacts' / 'train_step.onnx'} "
                             f"(also policy.onnx, loss.onnx)"))
        if not result.validation_passed:
            raise typer.Exit(1)
    else:
        console.print(escape(f"next: rlexport evaluate {run} --backend torch"))
    return result


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        algo: str = typer.Option(None, "--algo", help="The algorithm: ppo (CleanRL ppo.py's defaults, the default) or a2c (Stable-Baselines3-style defaults)."),
        env: str = typer.Option(None, "--env", help="The Gymnasium environment id, with a Discrete or bounded Box action space (default CartPole-v1)."),
        engine: str = typer.Option(None, "--engine", help="Where updates run: torch (eager loss and torch.optim, the default) or onnx (acting, GAE and the whole update in ONNX Runtime)."),
        total_steps: int = typer.Option(None, "--total-steps", help="The environment steps to train for: 500000 by default once any option is given (with no options at all, the 50000-step demo runs); with --resume, the new total."),
        seed: int = typer.Option(None, "--seed", help="The seed of the networks, the environments and the sampling (default 1)."),
        num_envs: int = typer.Option(None, "--num-envs", help="The number of parallel environments (PPO 4, A2C 8 by default)."),
        vector_env: str = typer.Option(None, "--vector-env", help="How the environments are stepped: auto (the default: for CartPole rlexport's exact fast CartPole below 64 envs and Gymnasium's numpy vector env from 64 on, else SyncVectorEnv), sync, native or fast."),
        num_steps: int = typer.Option(None, "--num-steps", help="The steps per environment in one rollout (PPO 128, A2C 5 by default)."),
        update_epochs: int = typer.Option(None, "--update-epochs", help="The PPO epochs over each rollout (default 4)."),
        num_minibatches: int = typer.Option(None, "--num-minibatches", help="The minibatches per epoch (default 4)."),
        learning_rate: float = typer.Option(None, "--learning-rate", "--lr", help="The Adam learning rate (PPO 2.5e-4, A2C 7e-4 by default)."),
        anneal_lr: bool = typer.Option(None, "--anneal-lr/--no-anneal-lr", help="Decay the learning rate linearly to 0 (on for PPO, off for A2C by default)."),
        adam_eps: float = typer.Option(None, "--adam-eps", help="The Adam epsilon (default 1e-5)."),
        gamma: float = typer.Option(None, "--gamma", help="The discount, in [0, 1] (default 0.99)."),
        gae_lambda: float = typer.Option(None, "--gae-lambda", help="The GAE lambda, in [0, 1] (PPO 0.95, A2C 1.0 by default)."),
        clip_coef: float = typer.Option(None, "--clip-coef", help="The PPO ratio clip and the value clip range (default 0.2)."),
        clip_vloss: bool = typer.Option(None, "--clip-vloss/--no-clip-vloss", help="Clip the value loss as CleanRL does (on for PPO by default)."),
        norm_adv: bool = typer.Option(None, "--norm-adv/--no-norm-adv", help="Normalise the advantages per minibatch (on for PPO by default)."),
        ent_coef: float = typer.Option(None, "--ent-coef", help="The entropy coefficient (PPO 0.01, A2C 0 by default)."),
        vf_coef: float = typer.Option(None, "--vf-coef", help="The value coefficient: the critic loss is vf_coef * 0.5 * (v - target)^2, as in CleanRL (PPO 0.5, A2C 1.0 by default)."),
        max_grad_norm: float = typer.Option(None, "--max-grad-norm", help="The bound of the global gradient-norm clip (default 0.5)."),
        normalize_obs: bool = typer.Option(None, "--normalize-obs/--no-normalize-obs", help="Normalise observations with running statistics (default off)."),
        normalize_reward: bool = typer.Option(None, "--normalize-reward/--no-normalize-reward", help="Scale rewards by the standard deviation of the discounted return (default off)."),
        box_distribution: str = typer.Option(None, "--box-distribution", help="The policy of a Box action space: normal (clipped to the bounds, the default) or tanh_normal; refused for Discrete actions."),
        hidden: str = typer.Option(None, "--hidden", help="The hidden layer sizes, comma-separated (default 64,64)."),
        checkpoint_every: int = typer.Option(None, "--checkpoint-every", help="The updates between checkpoints (default 0: every 30 s of training); there is always one after the last update and on Ctrl-C/SIGTERM."),
        threads: int = typer.Option(None, "--threads", help="The torch intra-op threads (default 1)."),
        out: Path = typer.Option(None, "--out", help="The run folder (default runs/<env>-<algo>-<seed>-<timestamp>)."),
        resume: Path = typer.Option(None, "--resume", help="Continue the run in this folder from its last checkpoint."),
        export: bool = typer.Option(None, "--export/--no-export", help="Export and validate the policy, loss and train-step artifacts at the end (default on)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="Print no progress bar."),
        no_cache: bool = typer.Option(False, "--no-cache", help="Export the ONNX engine's start-up graphs even when the graph cache ($RLEXPORT_CACHE_DIR, default ~/.cache/rlexport; see `rlexport cache info`) holds them."),
    ) -> None:
        """Train PPO or A2C on a Gymnasium env; no options: a 50k-step CartPole PPO demo."""
        options = dict(
            algo=algo, env_id=env, engine=engine, total_steps=total_steps, seed=seed, num_envs=num_envs,
            num_steps=num_steps, update_epochs=update_epochs, num_minibatches=num_minibatches,
            learning_rate=learning_rate, anneal_lr=anneal_lr, adam_eps=adam_eps, gamma=gamma, gae_lambda=gae_lambda,
            clip_coef=clip_coef, clip_vloss=clip_vloss, norm_adv=norm_adv, ent_coef=ent_coef, vf_coef=vf_coef,
            max_grad_norm=max_grad_norm, normalize_obs=normalize_obs, normalize_reward=normalize_reward,
            box_distribution=box_distribution, hidden=_hidden(hidden), checkpoint_every=checkpoint_every,
            threads=threads, out=str(out) if out is not None else None, vector_env=vector_env,
            export_artifacts=export,
        )
        if resume is not None:
            others = [_FLAGS.get(k, "--" + k.replace("_", "-")) for k, v in options.items() if v is not None and k != "total_steps"]
            if others:
                raise UsageError(
                    f"--resume continues a run with its saved config; only --total-steps may be given (got {', '.join(others)})"
                )
            _run(resume=resume, total_steps=total_steps, quiet=quiet, cache=not no_cache)
            return
        # heavy (torch): imported when the command runs
        from rlexport.train.config import make_config
        from rlexport.train.demo import demo_config

        try:
            if all(v is None for v in options.values()):
                cfg = demo_config()
                console.print(f"[bold]demo[/]: {cfg.env_id} {cfg.algo} ({cfg.engine}) for {cfg.total_steps} steps -> {cfg.out}")
            else:
                cfg = make_config(options.pop("algo") or "ppo", options.pop("env_id") or "CartPole-v1", **options)
        except ValueError as err:
            raise UsageError(str(err)) from None
        if box_distribution is not None:
            _check_box_distribution(cfg)
        _run(cfg, quiet=quiet, cache=not no_cache)
