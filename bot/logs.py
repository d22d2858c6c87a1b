"""Logging set-up: plain text or one JSON object per line, with secrets redacted.

Every line passes through a redactor that removes the configured secret values and
anything shaped like a Slack token or a bearer token, so a secret that slips into an
exception message or a logged URL still never reaches the log.

Lines that hostile or broken clients can make us repeat at will (refused requests, slow
connections cut, asyncio's "accept() out of system resource") go through ``RepeatFilter``:
the first of a kind is written, the rest are counted and summed up once per interval.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from bot.settings import LogFormat, Settings

__all__ = [
    "REFUSED_LOGGER",
    "JsonFormatter",
    "Redactor",
    "RepeatFilter",
    "TextFormatter",
    "configure_logging",
    "secrets_of",
]

REDACTED = "[redacted]"

# Slack bot/user/app tokens and Authorization header values.
_PATTERNS = [
    re.compile(r"\bxox[abposre]-[A-Za-z0-9-]+"),
    re.compile(r"\bxapp-[A-Za-z0-9-]+"),
    re.compile(r"(?i)(?<=bearer )[^\s'\",]+"),
]

# Attributes every LogRecord has; anything else was passed with ``extra=`` and is
# written as a field of the JSON line.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

REFUSED_LOGGER = "signoff.refused"
"""Where refused requests and cut connections are logged: anyone can cause these lines."""

# Loggers whose lines a client can make us repeat: ours for refusals, asyncio's accept()
# errors, aiohttp's protocol errors, and bolt's "unhandled request" warnings.
RATE_LIMITED = (REFUSED_LOGGER, "asyncio", "aiohttp", "slack_bolt")


@dataclass
class _Seen:
    since: float
    suppressed: int = 0


class RepeatFilter(logging.Filter):
    """Lets the first line of a kind through, then one summary line per ``interval``.

    A kind is the logger, the level and the message template (the unformatted message, its
    first line and first 80 characters), so "refused ... from 10.0.0.1" and "... from
    10.0.0.2" are one kind. Only loggers under ``prefixes`` are limited: the engine's own
    errors are never hidden.

    Args:
        interval: seconds between two lines of one kind.
        prefixes: logger names (and their children) to limit.
        clock: monotonic time (tests move it).
    """

    MAX_KINDS = 1000  # beyond this, kinds not seen for an interval are forgotten

    def __init__(
        self,
        interval: float = 60.0,
        *,
        prefixes: Iterable[str] = RATE_LIMITED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.interval = interval
        self.prefixes = tuple(prefixes)
        self.clock = clock
        self._seen: dict[tuple[str, int, str], _Seen] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a repeat within the interval; the next line through says how many."""
        if not self._limited(record.name):
            return True
        key = (record.name, record.levelno, str(record.msg).split("\n", 1)[0][:80])
        now = self.clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen.since < self.interval:
            seen.suppressed += 1
            return False
        if seen is not None and seen.suppressed:
            record.msg = (
                f"{record.msg} [and {seen.suppressed} more like this in the last "
                f"{now - seen.since:.0f}s, not logged]"
            )
        if len(self._seen) >= self.MAX_KINDS:
            self._forget(now)
        self._seen[key] = _Seen(now)
        return True

    def _limited(self, name: str) -> bool:
        return any(name == p or name.startswith(p + ".") for p in self.prefixes)

    def _forget(self, now: float) -> None:
        stale = [k for k, v in self._seen.items() if now - v.since >= self.interval]
        for key in stale or list(self._seen)[: self.MAX_KINDS // 2]:
            del self._seen[key]


class Redactor:
    """Replaces known secret values and token-shaped strings with ``[redacted]``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is removed whole. Very short
        # values are skipped: redacting "a" everywhere would make logs unreadable.
        self.secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """The text with every secret removed."""
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        for pattern in _PATTERNS:
            text = pattern.sub(REDACTED, text)
        return text


class TextFormatter(logging.Formatter):
    """``2025-01-01T10:00:00Z INFO signoff.api message`` lines, redacted."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self.redact = redact

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """ISO 8601 in UTC."""
        return _iso(record.created)

    def format(self, record: logging.LogRecord) -> str:
        """Format, then redact the whole line (traceback included)."""
        return self.redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, extras, exception."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        """The record as a redacted JSON line."""
        line: dict[str, Any] = {
            "time": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return self.redact(json.dumps(line, default=str))


_SLACK_CLIENT_LOGGERS = ("slack_sdk.web.async_base_client", "slack_sdk.web.base_client")


def _iso(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")


def secrets_of(settings: Settings) -> list[str]:
    """Every secret value in the settings, for the redactor."""
    values = [
        settings.slack_bot_token,
        settings.slack_signing_secret,
        settings.slack_app_token,
        settings.webhook_secret,
        settings.api_token,
        *settings.webhook_secrets.values(),
    ]
    return [v.get_secret_value() for v in values if v is not None]


def configure_logging(
    level: str = "INFO",
    fmt: LogFormat | str = LogFormat.TEXT,
    *,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
    repeat_interval: float = 60.0,
) -> logging.Handler:
    """Send every log record to ``stream`` (stderr) in ``fmt``; return the handler.

    Replaces handlers installed by an earlier call, so calling it twice is harmless.
    Repeated lines that clients can cause are summed up every ``repeat_interval`` seconds
    (see ``RepeatFilter``).
    """
    redact = Redactor(secrets)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name("signoff")
    handler.addFilter(RepeatFilter(repeat_interval))
    use_json = LogFormat(fmt) is LogFormat.JSON
    handler.setFormatter(JsonFormatter(redact) if use_json else TextFormatter(redact))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "signoff"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # slack-sdk's Web API clients test their logger's own level, not the effective one,
    # before building their debug lines (each request's and response's whole body): with
    # the level unset (0) they were built on every Slack call only to be dropped. The
    # configured level changes nothing that is logged, and skips that work.
    for name in _SLACK_CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(level)
    # aiohttp's access log repeats every request; keep it at WARNING unless debugging.
    logging.getLogger("aiohttp.access").setLevel(
        logging.DEBUG if level == "DEBUG" else logging.WARNING
    )
    return handler
