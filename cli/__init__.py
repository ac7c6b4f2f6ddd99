"""The rlexport command line (Typer + rich); installed as ``rlexport.cli``."""
