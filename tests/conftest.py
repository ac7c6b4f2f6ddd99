"""Puts ``tests/`` on ``sys.path`` (pytest inserts a conftest's directory), so every test module
imports the one shared helper as ``import helpers``."""
