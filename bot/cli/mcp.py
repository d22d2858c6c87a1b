"""``signoff mcp``: run the MCP server for agents over stdio (needs ``signoff[mcp]``)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

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
    try:
        asyncio.run(run_stdio())
    except ValueError as exc:
        print(f"signoff mcp: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
