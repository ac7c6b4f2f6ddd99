"""Tables that survive a narrow terminal: every cell folds onto further lines instead of being cut
(a name such as ``grad.actor_network.module.0.weight`` stays whole), and shapes print literally
(``[batch, 4]`` is text, not rich markup)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.markup import escape
from rich.table import Table

__all__ = ["folding_table", "shape_text", "escape"]


def folding_table(title: str, columns: Sequence[str], *, right: Sequence[str] = ()) -> Table:
    """A ``rich.table.Table`` whose columns fold long cells (never ellipsis); ``right``: right-aligned columns."""
    table = Table(title=escape(title), title_justify="left")
    for col in columns:
        table.add_column(escape(col), overflow="fold", justify="right" if col in right else "left")
    return table


def shape_text(shape: Sequence[object]) -> str:
    """``[batch, 4]``: a shape with its dynamic dims named, escaped for rich."""
    return escape("[" + ", ".join(str(d) for d in shape) + "]")
