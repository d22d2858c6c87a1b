"""The limits' settings and the log filter that keeps repeated refusals from flooding the log."""

from __future__ import annotations

import io
import logging

from bot.logs import REFUSED_LOGGER, RepeatFilter, configure_logging
from bot.settings import Settings
from bot.web.guard import Limits, connection_cap


def test_repeated_lines_are_one_line_then_one_summary_per_interval() -> None:
    now = [0.0]
    stream = io.StringIO()
    handler = configure_logging(stream=stream)
    handler.filters.clear()
    handler.addFilter(RepeatFilter(60.0, clock=lambda: now[0]))
    refused, engine = logging.getLogger(REFUSED_LOGGER + ".x"), logging.getLogger("signoff.e")
    try:
        for n in range(1000):
            refused.warning("refused a request from %s", f"10.0.0.{n % 250}")
            now[0] += 0.05  # 1,000 lines in 50 s
        engine.error("step failed for run %s", "a")
        engine.error("step failed for run %s", "b")  # never limited: not a refusal
        now[0] = 61.0
        refused.warning("refused a request from %s", "10.0.0.1")
    finally:
        logging.getLogger().removeHandler(handler)

    lines = stream.getvalue().splitlines()
    assert len(lines) == 4, lines
    assert "10.0.0.0" in lines[0]
    assert "run a" in lines[1] and "run b" in lines[2]
    assert "and 999 more like this in the last 61s, not logged" in lines[3]


def test_limits_come_from_settings_and_the_cap_from_the_open_file_limit() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, SIGNOFF_HEADER_TIMEOUT="2", SIGNOFF_BODY_TIMEOUT="3",
        SIGNOFF_KEEPALIVE_TIMEOUT="4",
    )  # fmt: skip
    limits = Limits.from_settings(settings)
    assert (limits.header_timeout, limits.body_timeout, limits.keepalive_timeout) == (2, 3, 4)
    assert limits.max_connections == connection_cap()
    assert (connection_cap(256), connection_cap(1024), connection_cap(65536)) == (192, 768, 49152)
    fixed = Settings(_env_file=None, SIGNOFF_MAX_CONNECTIONS="50")  # type: ignore[call-arg]
    assert Limits.from_settings(fixed).max_connections == 50
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (defaults.header_timeout, defaults.body_timeout, defaults.keepalive_timeout) == (
        10,
        30,
        75,
    )
