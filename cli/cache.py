"""``rlexport cache info|clear``: the graph cache of ``rlexport train``'s start-up graphs."""

from __future__ import annotations

import typer
from rich.markup import escape

from rlexport.cli.errors import UsageError, console


def _cache():
    # imported when the command runs (the artifact layer imports onnx), so `rlexport --help` stays fast
    from rlexport.artifact.cache import CacheError, GraphCache

    try:
        return GraphCache()
    except CacheError as err:
        raise UsageError(str(err)) from None


def register(app: typer.Typer) -> None:
    cache_app = typer.Typer(help="The graph cache of `rlexport train` ($RLEXPORT_CACHE_DIR, default ~/.cache/rlexport).",
                            no_args_is_help=True)

    @cache_app.command("info")
    def info_cmd() -> None:
        """Print the cache folder, its entries, their size and the size bound."""
        info = _cache().info()
        console.print(escape(f"{info['root']}: {info['entries']} graphs, {info['bytes'] / 2**20:.1f} MiB of "
                             f"{info['max_bytes'] / 2**20:.0f} MiB ($RLEXPORT_CACHE_MAX_MB)"), highlight=False)

    @cache_app.command("clear")
    def clear_cmd() -> None:
        """Remove every cached graph."""
        cache = _cache()
        console.print(escape(f"removed {cache.clear()} graphs from {cache.root}"), highlight=False)

    app.add_typer(cache_app, name="cache")
