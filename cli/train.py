"""``rlexport train``: PPO / A2C on a Gymnasium environment, torch or ONNX Runtime updates.

With no options at all it runs the demo: CartPole-v1 PPO for 50k steps ending in exported and
validated artifacts (``rlexport.train.run_demo``), i.e. exactly ``rlexport train --total-steps 50000``
(every other default is the same: ``--engine onnx``, seed 1).
"""

from __future__ import annotations

import math
from pathlib import Path

import typer

from rich.markup import escape

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


class _Progress:
    """A rich progress bar that fits 80 columns: steps, bar, mean return of the last 20 episodes,
    steps/s, ETA (the run's title is printed on its own line before; losses are in metrics.csv)."""

    def __init__(self, total: int, start: int, enabled: bool = True):
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.enabled = enabled
        self.progress = Progress(
            TextColumn("{task.completed:>7.0f}/{task.total:.0f}"), BarColumn(bar_width=16),
            TextColumn("return {task.fields[ret]:>5}"), TextColumn("{task.fields[sps]:>6} steps/s"),
            TextColumn("ETA"), TimeRemainingColumn(compact=True),
            console=console, transient=False, disable=not enabled,
        )
        self.task = self.progress.add_task("train", total=total, completed=start, sps="-", ret="-")

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
        self.progress.update(
            self.task, completed=row["global_step"], sps=f"{row['steps_per_s']:.0f}",
            ret="-" if ret is None or math.isnan(ret) else f"{ret:.1f}",
        )


# the CLI spelling of each TrainConfig field (messages name options, never internal fields)
_FLAGS = {"env_id": "--env", "export_artifacts": "--export/--no-export", "learning_rate": "--lr"}


def _flag(field: str) -> str:
    return _FLAGS.get(field, "--" + field.replace("_", "-"))


def _run(cfg=None, resume=None, total_steps=None, export=None, quiet=False):
    from rlexport.train import TrainError, TrainInterrupted, train
    from rlexport.train.loop import _read_resume

    def title(c, start):
        if resume is not None:
            line = f"resuming {c.env_id} {c.algo} ({c.engine} engine) at step {start} of {c.total_steps} -> {resume}"
        else:
            line = f"training {c.env_id} {c.algo} ({c.engine} engine), {c.total_steps} steps, seed {c.seed} -> {c.out}"
        console.print(escape(line), highlight=False, soft_wrap=True)

    try:
        if resume is not None:
            c, _, meta = _read_resume(Path(resume))
            if meta.get("fallback"):
                console_err.print(f"[yellow]warning:[/] {escape(meta['fallback'])}", highlight=False, soft_wrap=True)
            total, start = int(total_steps or c.total_steps), int(meta["global_step"])
        else:
            total, start = cfg.total_steps, 0
        with _Progress(total, start, enabled=not quiet) as bar:
            result = train(cfg, resume=resume, total_steps=total_steps, export=export, on_update=bar, on_start=title)
    except TrainInterrupted as err:
        console_err.print(f"[yellow]{escape(str(err))}[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    except TrainError as err:
        raise UsageError(str(err)) from None
    run = result.run_dir
    ret = "n/a" if result.mean_return is None else f"{result.mean_return:.1f}"
    console.print(
        f"[green]done[/] {result.global_step} steps, mean return (last 20 episodes) {ret}, "
        f"{result.steps_per_s:.0f} steps/s -> {escape(str(run))}", highlight=False, soft_wrap=True,
    )
    console.print(f"learning curve: {escape(str(run / 'learning_curve.png'))}", highlight=False, soft_wrap=True)
    console.print(f"evaluate it:    rlexport evaluate {escape(str(run))}", highlight=False, soft_wrap=True)
    if result.validation_passed is not None:
        verdict = "[green]passed[/]" if result.validation_passed else "[red]FAILED[/]"
        console.print(f"validation {verdict} ({escape(str(run / 'validation.json'))}); re-check an artifact with:",
                      highlight=False, soft_wrap=True)
        console.print(f"                rlexport validate {escape(str(run / 'artifacts' / 'policy.onnx'))}",
                      highlight=False, soft_wrap=True)
        if not result.validation_passed:
            raise typer.Exit(1)
    return result


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        algo: str = typer.Option(None, "--algo", help="ppo (CleanRL ppo.py defaults) or a2c (SB3-style defaults)."),
        env: str = typer.Option(None, "--env", help="Any Gymnasium env id with a Discrete or Box action space."),
        engine: str = typer.Option(None, "--engine", help="onnx (default): act, GAE and the whole update in ONNX Runtime. torch: eager loss + torch.optim."),
        total_steps: int = typer.Option(None, "--total-steps", help="Environment steps: 500000 when any option is given, 50000 for the no-option demo; with --resume, the new total."),
        seed: int = typer.Option(None, "--seed", help="Seed of networks, envs and sampling (default 1)."),
        num_envs: int = typer.Option(None, "--num-envs", help="Parallel envs; PPO 4, A2C 8."),
        vector_env: str = typer.Option(None, "--vector-env", help="auto (default): Gymnasium's native numpy vector env where one exists (CartPole), else SyncVectorEnv; sync; native."),
        num_steps: int = typer.Option(None, "--num-steps", help="Steps per env per rollout; PPO 128, A2C 5."),
        update_epochs: int = typer.Option(None, "--update-epochs", help="PPO epochs per rollout (4)."),
        num_minibatches: int = typer.Option(None, "--num-minibatches", help="Minibatches per epoch (4)."),
        learning_rate: float = typer.Option(None, "--learning-rate", "--lr", help="Adam lr; PPO 2.5e-4, A2C 7e-4."),
        anneal_lr: bool = typer.Option(None, "--anneal-lr/--no-anneal-lr", help="Linear lr decay to 0 (PPO on, A2C off)."),
        adam_eps: float = typer.Option(None, "--adam-eps", help="Adam epsilon (1e-5)."),
        gamma: float = typer.Option(None, "--gamma", help="Discount (0.99)."),
        gae_lambda: float = typer.Option(None, "--gae-lambda", help="GAE lambda; PPO 0.95, A2C 1.0."),
        clip_coef: float = typer.Option(None, "--clip-coef", help="PPO ratio clip and value clip range (0.2)."),
        clip_vloss: bool = typer.Option(None, "--clip-vloss/--no-clip-vloss", help="CleanRL value clipping (PPO on)."),
        norm_adv: bool = typer.Option(None, "--norm-adv/--no-norm-adv", help="Per-minibatch advantage normalisation (PPO on)."),
        ent_coef: float = typer.Option(None, "--ent-coef", help="Entropy coefficient; PPO 0.01, A2C 0."),
        vf_coef: float = typer.Option(None, "--vf-coef", help="Critic loss = vf_coef * 0.5 * (v - target)^2 (CleanRL); PPO 0.5, A2C 1.0."),
        max_grad_norm: float = typer.Option(None, "--max-grad-norm", help="Global gradient-norm clip (0.5)."),
        normalize_obs: bool = typer.Option(None, "--normalize-obs/--no-normalize-obs", help="Running observation normalisation."),
        normalize_reward: bool = typer.Option(None, "--normalize-reward/--no-normalize-reward", help="Scale rewards by the std of the discounted return."),
        box_distribution: str = typer.Option(None, "--box-distribution", help="Box actions: normal (clipped to the bounds, default) or tanh_normal."),
        hidden: str = typer.Option(None, "--hidden", help="Hidden layer sizes, e.g. 64,64."),
        checkpoint_every: int = typer.Option(None, "--checkpoint-every", help="Updates between checkpoints; 0 (default): every 30 s. Always at the end and on Ctrl-C/SIGTERM."),
        threads: int = typer.Option(None, "--threads", help="torch intra-op threads (1)."),
        out: Path = typer.Option(None, "--out", help="Run folder (default runs/<env>-<algo>-<seed>-<timestamp>)."),
        resume: Path = typer.Option(None, "--resume", help="Continue the run in this folder from its last checkpoint."),
        export: bool = typer.Option(None, "--export/--no-export", help="Export + validate policy/loss/train-step artifacts at the end (default on; allowed with --resume)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ) -> None:
        """Train PPO or A2C on a Gymnasium env. With no options: the demo, i.e. rlexport train --total-steps 50000."""
        options = dict(
            algo=algo, env_id=env, engine=engine, total_steps=total_steps, seed=seed, num_envs=num_envs,
            num_steps=num_steps, update_epochs=update_epochs, num_minibatches=num_minibatches,
            learning_rate=learning_rate, anneal_lr=anneal_lr, adam_eps=adam_eps, gamma=gamma, gae_lambda=gae_lambda,
            clip_coef=clip_coef, clip_vloss=clip_vloss, norm_adv=norm_adv, ent_coef=ent_coef, vf_coef=vf_coef,
            max_grad_norm=max_grad_norm, normalize_obs=normalize_obs, normalize_reward=normalize_reward,
            box_distribution=box_distribution, hidden=_hidden(hidden), checkpoint_every=checkpoint_every,
            threads=threads, out=str(out) if out is not None else None, vector_env=vector_env,
        )
        if resume is not None:
            others = [_flag(k) for k, v in options.items() if v is not None and k != "total_steps"]
            if others:
                raise UsageError(
                    "--resume continues a run with its saved config; only --total-steps and --export/--no-export "
                    f"may be given (got {', '.join(others)})"
                )
            _run(resume=resume, total_steps=total_steps, export=export, quiet=quiet)
            return
        from rlexport.train.config import make_config
        from rlexport.train.demo import DEMO_ENGINE, demo_config

        try:
            if all(v is None for v in options.values()) and export is None:
                cfg = demo_config()
                console.print("[bold]demo[/] (rlexport train --total-steps 50000; see rlexport train --help)")
            else:
                options["engine"] = options["engine"] or DEMO_ENGINE
                cfg = make_config(options.pop("algo") or "ppo", options.pop("env_id") or "CartPole-v1",
                                  export_artifacts=export, **options)
        except ValueError as err:
            raise UsageError(str(err)) from None
        _run(cfg, quiet=quiet)
