"""``rlexport inspect ARTIFACT``: inputs, outputs (shapes with dynamic dims), opset, metadata, nodes;
for a train-step graph also its state pairs (input fed by which output at the next step) and its
hyper-parameter inputs with their defaults."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from rlexport.cli.errors import UsageError, console
from rlexport.cli.tables import escape, folding_table, shape_text


def register(app: typer.Typer) -> None:
    @app.command("inspect")
    def inspect_cmd(
        artifact: Path = typer.Argument(..., help="An .onnx, .pt2, TorchScript or AOTInductor artifact."),
        as_json: bool = typer.Option(False, "--json", help="Print the description as JSON."),
    ) -> None:
        """Describe an artifact: its inputs and outputs with dtypes and shapes (dynamic dims by name), opset, node count and metadata."""
        # heavy (onnx, torch): imported when the command runs, so that `rlexport --help` stays fast
        from rlexport.artifact.errors import ArtifactError
        from rlexport.runtime.load import describe

        try:
            info = describe(artifact)
        except (ArtifactError, ValueError, OSError) as err:
            raise UsageError(str(err)) from err
        if as_json:
            typer.echo(json.dumps(info, indent=2, default=str))
            return
        console.print(f"[bold]{escape(str(info['path']))}[/]  format {info['format']}, {info['size_bytes']} bytes")
        if info.get("opset"):
            console.print(f"opset {info['opset']}, {info['nodes']} nodes, {info.get('initializers', 0)} initializers")
        elif info.get("nodes") is not None:
            console.print(f"{info['nodes']} nodes")
        table = folding_table("inputs and outputs", ("", "name", "dtype", "shape"))
        for kind in ("inputs", "outputs"):
            for name, spec in info[kind].items():
                table.add_row(kind[:-1], escape(name), spec.get("dtype", "?"), shape_text(spec.get("shape", [])))
        console.print(table)
        metadata = info["metadata"]
        if metadata.get("kind") == "train_step":
            _train_step_tables(metadata)
        meta = folding_table("metadata", ("key", "value"))
        shown = ("state", "hyperparams", "layout", "input_names", "step_inputs") if metadata.get("kind") == "train_step" else ()
        for key, value in metadata.items():
            if key in shown:
                continue
            text = value if isinstance(value, str) else json.dumps(value)
            meta.add_row(escape(key), escape(text if len(text) < 400 else text[:400] + " ..."))
        console.print(meta)
        golden = info.get("golden")
        if golden:
            console.print(f"golden sample: {escape(str(golden['path']))} ({golden['kind']}, rtol {golden['rtol']:g}, atol {golden['atol']:g}; cases {', '.join(golden['cases'])})")
        else:
            console.print("[yellow]no golden sample beside it[/]")


def _train_step_tables(metadata: dict) -> None:
    """The optimizer, state pairs and hyper-parameter defaults of a train-step artifact."""
    console.print(escape(f"train step: {metadata.get('semantics', metadata.get('optimizer'))}, total loss "
                         f"{metadata.get('total_loss', '?')}; {metadata.get('clip', '')}"))
    state = folding_table(f"state pairs ({len(metadata.get('state', {}))}): feed each output back as the input at the next step",
                          ("input", "<- output of the previous step"))
    for i, o in metadata.get("state", {}).items():
        state.add_row(escape(i), escape(o))
    console.print(state)
    hp = folding_table("hyper-parameters (graph inputs; defaults recorded at export)", ("input", "default"), right=("default",))
    for name, value in metadata.get("hyperparams", {}).items():
        hp.add_row(escape(name), escape(str(value)))
    console.print(hp)
    steps = metadata.get("step_inputs")
    if steps:
        console.print(escape(f"given at every step: {', '.join(steps)}"))
