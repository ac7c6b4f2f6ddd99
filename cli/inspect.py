"""``rlexport inspect ARTIFACT``: inputs, outputs (shapes with dynamic dims), opset, metadata, nodes;
for a train-step graph also its state pairs (input fed by which output at the next step) and its
hyper-parameter inputs with their defaults."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from rlexport.cli.errors import UsageError, console


def register(app: typer.Typer) -> None:
    @app.command("inspect")
    def inspect_cmd(
        artifact: Path = typer.Argument(..., help="An .onnx, .pt2, TorchScript or AOTInductor artifact."),
        as_json: bool = typer.Option(False, "--json", help="Print the description as JSON."),
    ) -> None:
        """Describe an artifact: inputs and outputs with dtypes and shapes, opset, node count, metadata."""
        from rich.table import Table

        from rlexport.artifact.errors import ArtifactError
        from rlexport.runtime.load import describe

        try:
            info = describe(artifact)
        except (ArtifactError, ValueError, OSError) as err:
            raise UsageError(str(err)) from err
        if as_json:
            typer.echo(json.dumps(info, indent=2, default=str))
            return
        console.print(f"[bold]{info['path']}[/]  format {info['format']}, {info['size_bytes']} bytes")
        if info.get("opset"):
            console.print(f"opset {info['opset']}, {info['nodes']} nodes, {info.get('initializers', 0)} initializers")
        elif info.get("nodes") is not None:
            console.print(f"{info['nodes']} nodes")
        table = Table(title="inputs and outputs")
        for col in ("", "name", "dtype", "shape"):
            table.add_column(col)
        for kind in ("inputs", "outputs"):
            for name, spec in info[kind].items():
                shape = "[" + ", ".join(str(s) for s in spec.get("shape", [])) + "]"
                table.add_row(kind[:-1], name, spec.get("dtype", "?"), shape)
        console.print(table)
        metadata = info["metadata"]
        if metadata.get("kind") == "train_step":
            _train_step_tables(metadata)
        meta = Table(title="metadata")
        meta.add_column("key")
        meta.add_column("value", overflow="fold")
        shown = ("state", "hyperparams", "layout", "input_names", "step_inputs") if metadata.get("kind") == "train_step" else ()
        for key, value in metadata.items():
            if key in shown:
                continue
            text = value if isinstance(value, str) else json.dumps(value)
            meta.add_row(key, text if len(text) < 400 else text[:400] + " ...")
        console.print(meta)
        golden = info.get("golden")
        if golden:
            console.print(f"golden sample: {golden['path']} ({golden['kind']}, rtol {golden['rtol']:g}, atol {golden['atol']:g}; cases {', '.join(golden['cases'])})")
        else:
            console.print("[yellow]no golden sample beside it[/]")


def _train_step_tables(metadata: dict) -> None:
    """The optimizer, state pairs and hyper-parameter defaults of a train-step artifact."""
    from rich.table import Table

    console.print(f"train step: {metadata.get('semantics', metadata.get('optimizer'))}, total loss {metadata.get('total_loss', '?')}; "
                  f"{metadata.get('clip', '')}")
    state = Table(title=f"state pairs ({len(metadata.get('state', {}))}): feed each output back as the input at the next step")
    state.add_column("input")
    state.add_column("<- output of the previous step")
    for i, o in metadata.get("state", {}).items():
        state.add_row(i, o)
    console.print(state)
    hp = Table(title="hyper-parameters (graph inputs; defaults recorded at export)")
    hp.add_column("input")
    hp.add_column("default", justify="right")
    for name, value in metadata.get("hyperparams", {}).items():
        hp.add_row(name, str(value))
    console.print(hp)
    steps = metadata.get("step_inputs")
    if steps:
        console.print(f"given at every step: {', '.join(steps)}")
