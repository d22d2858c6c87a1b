"""Importing the client stays light: no Slack SDKs, no aiosqlite, no engine."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_client_loads_no_slack_bolt_aiosqlite_or_engine() -> None:
    code = (
        "import sys, bot.client\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('slack_bolt', 'slack_sdk', 'aiosqlite', 'engine', 'asyncpg'))\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""
