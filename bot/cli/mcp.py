"""``signoff mcp``: run the MCP server for agents over stdio (needs ``signoff[mcp]``)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from bot.logs import configure_logging
from bot.settings import LogFormat

__all__ = ["add_mcp_parser", "cmd_mcp"]


def add_mcp_parser(sub: Any) -> None:
    """Add ``mcp`` to the ``signoff`` subcommands."""
    sub.add_parser(
        "mcp",
        help="MCP server (stdio) with request tools for agents ($SIGNOFF_URL, $SIGNOFF_TOKEN)",
    )


def cmd_mcp(args: argparse.Namespace) -> int:
    """Run the MCP server over stdio; 2 if the SDK is missing or the client unconfigured."""
    try:
        from bot.mcp.server import run_stdio
    except ImportError as exc:
        print(f"signoff mcp: {exc}; install it with pip install 'signoff[mcp]'", file=sys.stderr)
        return 2
    _log_to_stderr()
    try:
        asyncio.run(run_stdio())
    except ValueError as exc:
        print(f"signoff mcp: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def _log_to_stderr() -> None:
    """Log to stderr (stdout carries the protocol), as ``$SIGNOFF_LOG_LEVEL`` (INFO) and
    ``$SIGNOFF_LOG_FORMAT`` (text) say, with the API token redacted."""
    level = os.environ.get("SIGNOFF_LOG_LEVEL", "").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        level = "INFO"
    fmt = os.environ.get("SIGNOFF_LOG_FORMAT", "").lower()
    token = os.environ.get("SIGNOFF_TOKEN") or os.environ.get("SIGNOFF_API_TOKEN")
    configure_logging(
        level,
        LogFormat.JSON if fmt == LogFormat.JSON.value else LogFormat.TEXT,
        secrets=[token] if token else [],
    )
