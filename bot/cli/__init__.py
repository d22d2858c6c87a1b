"""The ``signoff`` command line: ``serve`` and the run/workflow commands."""

from bot.cli.main import main

__all__ = ["main"]
