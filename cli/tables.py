"""Tables that survive a narrow terminal: cells fold onto further lines instead of being cut (a
name such as ``grad.actor_network.module.0.weight`` stays whole and unambiguous), light borders
leave the width to the content, and shapes print literally (``[batch, 4]`` is text, not rich
markup)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich import box
from rich.markup import escape
from rich.table import Table

__all__ = ["folding_table", "shape_text", "escape"]


def folding_table(title: str, columns: Sequence[str], *, right: Sequence[str] = (),
                  min_widths: Mapping[str, int] | None = None) -> Table:
    """A ``rich.table.Table`` whose columns fold long cells (never an ellipsis); ``right``: right-aligned
    columns; ``min_widths``: columns that keep at least that many characters (e.g. the longest name)."""
    table = Table(title=escape(title), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in columns:
        table.add_column(escape(col), overflow="fold", justify="right" if col in right else "left",
                         min_width=(min_widths or {}).get(col))
    return table


def shape_text(shape: Sequence[object]) -> str:
    """``[batch, 4]``: a shape with its dynamic dims named, escaped for rich."""
    return escape("[" + ", ".join(str(d) for d in shape) + "]")
