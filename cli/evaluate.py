"""``rlexport evaluate RUN``: run a trained policy for N episodes and print the mean return."""

from __future__ import annotations

from pathlib import Path

import typer

from rlexport.cli.errors import UsageError, console


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate_cmd(
        run: Path = typer.Argument(..., help="A run folder written by `rlexport train`."),
        episodes: int = typer.Option(10, "--episodes", "-n", help="The number of episodes to run (default 10)."),
        backend: str = typer.Option("onnx", "--backend", help="What acts: onnx (artifacts/policy.onnx in ONNX Runtime, the default) or torch (the checkpoint's actor)."),
        seed: int = typer.Option(None, "--seed", help="The base seed of the evaluation episodes (default: the run's seed + 10000)."),
    ) -> None:
        """Run the saved greedy policy for N episodes; print the mean episodic return."""
        # heavy (torch, gymnasium, onnxruntime): imported when the command runs
        from rlexport.train import TrainError, evaluate

        try:
            res = evaluate(run, episodes=episodes, backend=backend, seed=seed)
        except TrainError as err:
            raise UsageError(str(err)) from None
        console.print(
            f"{res.episodes} episodes ({backend}): mean return {res.mean_return:.2f} ± {res.std_return:.2f} "
            f"(min {min(res.returns):.1f}, max {max(res.returns):.1f}, mean length {sum(res.lengths) / len(res.lengths):.0f})"
        )
