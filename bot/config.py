"""Load the settings at start-up and say, one line per problem, what is wrong with them."""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError
from pydantic_settings import SettingsError

from bot.settings import Settings
from engine import field_errors

__all__ = ["ConfigError", "describe_errors", "load_settings"]


class ConfigError(Exception):
    """The configuration is unusable; ``problems`` holds one readable line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration: " + "; ".join(problems))


def describe_errors(exc: ValidationError) -> list[str]:
    """Pydantic errors as ``"SIGNOFF_PORT: Input should be a valid integer"`` lines.

    The offending values are never echoed: some of them are secrets.
    """
    lines = []
    for where, message in field_errors(exc).items():
        message = message.removeprefix("Value error, ")
        lines.append(f"{where}: {message}" if where else message)
    return lines


def load_settings(**overrides: Any) -> Settings:
    """Read ``Settings`` from the environment and ``.env`` (ConfigError if invalid)."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc)) from None
    except SettingsError as exc:
        # Raised for values that are not even parseable (e.g. malformed JSON in
        # SIGNOFF_WEBHOOK_SECRETS); its message names the field, never the value.
        raise ConfigError([_unparseable(exc)]) from None


def _unparseable(exc: SettingsError) -> str:
    # pydantic-settings says 'error parsing value for field "webhook_secrets" ...': name
    # the environment variable instead, which is what the operator has to fix.
    found = re.search(r'field "(\w+)"', str(exc))
    field = Settings.model_fields.get(found.group(1)) if found else None
    name = field.validation_alias if field is not None else None
    cause = exc.__cause__
    detail = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
    return f"{name}: cannot parse the value ({detail})" if isinstance(name, str) else detail
