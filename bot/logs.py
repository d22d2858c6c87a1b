"""Logging set-up: plain text or one JSON object per line, with secrets redacted.

Every line passes through a redactor that removes the configured secret values and
anything shaped like a Slack token or a bearer token, so a secret that slips into an
exception message or a logged URL still never reaches the log.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

from bot.settings import LogFormat, Settings

__all__ = ["JsonFormatter", "Redactor", "TextFormatter", "configure_logging", "secrets_of"]

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
) -> logging.Handler:
    """Send every log record to ``stream`` (stderr) in ``fmt``; return the handler.

    Replaces handlers installed by an earlier call, so calling it twice is harmless.
    """
    redact = Redactor(secrets)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name("signoff")
    use_json = LogFormat(fmt) is LogFormat.JSON
    handler.setFormatter(JsonFormatter(redact) if use_json else TextFormatter(redact))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "signoff"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # aiohttp's access log repeats every request; keep it at WARNING unless debugging.
    logging.getLogger("aiohttp.access").setLevel(
        logging.DEBUG if level == "DEBUG" else logging.WARNING
    )
    return handler
