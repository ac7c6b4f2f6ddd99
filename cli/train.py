"""``rlexport train``: PPO / A2C on a Gymnasium environment, torch or ONNX Runtime updates.

With no options at all it runs the demo: CartPole-v1 PPO for 50k steps ending in exported and
validated artifacts (``rlexport.train.run_demo``).
"""

from __future__ import annotations

import math
from pathlib import Path

import typer

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
    """A rich progress bar: steps, steps/s, mean return of the last 20 episodes, losses."""

    def __init__(self, total: int, start: int, title: str, enabled: bool = True):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[sps]:>6} steps/s"), TextColumn("return {task.fields[ret]:>8}"),
            TextColumn("[dim]{task.fields[losses]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=console, transient=False, disable=not enabled,
        )
        self.task = self.progress.add_task(title, total=total, completed=start, sps="-", ret="-", losses="")

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


def _run(cfg=None, resume=None, total_steps=None, quiet=False):
    from rlexport.train import TrainError, TrainInterrupted, train
    from rlexport.train.loop import _read_resume

    try:
        if resume is not None:
            c, _, meta = _read_resume(Path(resume))
            total = int(total_steps or c.total_steps)
            start, title = int(meta["global_step"]), f"{c.env_id} {c.algo} ({c.engine}, resumed)"
        else:
            total, start, title = cfg.total_steps, 0, f"{cfg.env_id} {cfg.algo} ({cfg.engine})"
        with _Progress(total, start, title, enabled=not quiet) as bar:
            result = train(cfg, resume=resume, total_steps=total_steps, on_update=bar)
    except TrainInterrupted as err:
        console_err.print(f"[yellow]{err}[/]")
        raise typer.Exit(130) from None
    except TrainError as err:
        raise UsageError(str(err)) from None
    ret = "n/a" if result.mean_return is None else f"{result.mean_return:.1f}"
    console.print(
        f"[green]done[/] {result.global_step} steps, mean return (last 20 episodes) {ret}, "
        f"{result.steps_per_s:.0f} steps/s -> {result.run_dir}"
    )
    if result.validation_passed is not None:
        verdict = "[green]passed[/]" if result.validation_passed else "[red]FAILED[/]"
        console.print(f"artifacts in {result.run_dir / 'artifacts'}; validation {verdict} ({result.run_dir / 'validation.json'})")
        if not result.validation_passed:
            raise typer.Exit(1)
    return result


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        algo: str = typer.Option(None, "--algo", help="ppo (CleanRL ppo.py defaults) or a2c (SB3-style defaults)."),
        env: str = typer.Option(None, "--env", help="Any Gymnasium env id with a Discrete or Box action space."),
        engine: str = typer.Option(None, "--engine", help="torch: eager loss + torch.optim. onnx: act, GAE and the whole update in ONNX Runtime."),
        total_steps: int = typer.Option(None, "--total-steps", help="Environment steps (default 500000; with --resume: the new total)."),
        seed: int = typer.Option(None, "--seed", help="Seed of networks, envs and sampling (default 1)."),
        num_envs: int = typer.Option(None, "--num-envs", help="Parallel envs (SyncVectorEnv); PPO 4, A2C 8."),
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
        checkpoint_every: int = typer.Option(None, "--checkpoint-every", help="Updates between checkpoints (0 = every >= 512 steps)."),
        threads: int = typer.Option(None, "--threads", help="torch intra-op threads (1)."),
        out: Path = typer.Option(None, "--out", help="Run folder (default runs/<env>-<algo>-<seed>-<timestamp>)."),
        resume: Path = typer.Option(None, "--resume", help="Continue the run in this folder from its last checkpoint."),
        export: bool = typer.Option(None, "--export/--no-export", help="Export + validate policy/loss/train-step artifacts at the end."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ) -> None:
        """Train PPO or A2C on a Gymnasium env; no options: a 50k-step CartPole PPO demo."""
        options = dict(
            algo=algo, env_id=env, engine=engine, total_steps=total_steps, seed=seed, num_envs=num_envs,
            num_steps=num_steps, update_epochs=update_epochs, num_minibatches=num_minibatches,
            learning_rate=learning_rate, anneal_lr=anneal_lr, adam_eps=adam_eps, gamma=gamma, gae_lambda=gae_lambda,
            clip_coef=clip_coef, clip_vloss=clip_vloss, norm_adv=norm_adv, ent_coef=ent_coef, vf_coef=vf_coef,
            max_grad_norm=max_grad_norm, normalize_obs=normalize_obs, normalize_reward=normalize_reward,
            box_distribution=box_distribution, hidden=_hidden(hidden), checkpoint_every=checkpoint_every,
            threads=threads, out=str(out) if out is not None else None,
            export_artifacts=export,
        )
        if resume is not None:
            others = [k for k, v in options.items() if v is not None and k != "total_steps"]
            if others:
                raise UsageError(
                    f"--resume continues a run with its saved config; only --total-steps may be given (got {', '.join(others)})"
                )
            _run(resume=resume, total_steps=total_steps, quiet=quiet)
            return
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
        _run(cfg, quiet=quiet)
