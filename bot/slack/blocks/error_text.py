"""Say pydantic validation errors the way a person filling in a form would want to read them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic_core import ErrorDetails

from bot.slack.blocks.text import truncate

__all__ = ["friendly_message"]

MESSAGE_MAX = 300


def _plural(count: Any, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _ctx(error: ErrorDetails) -> Mapping[str, Any]:
    # Float fields report their bounds as floats; "less than 1" reads better than "1.0".
    return {
        key: int(value) if isinstance(value, float) and value.is_integer() else value
        for key, value in (error.get("ctx") or {}).items()
    }


_FIXED = {
    "missing": "This field is required",
    "bool_parsing": "Choose yes or no",
    "bool_type": "Choose yes or no",
    "int_parsing": "Must be a whole number",
    "int_from_float": "Must be a whole number",
    "int_type": "Must be a whole number",
    "float_parsing": "Must be a number",
    "float_type": "Must be a number",
    "decimal_parsing": "Must be a number",
    "decimal_type": "Must be a number",
    "finite_number": "Must be a finite number",
    "date_parsing": "Enter a valid date",
    "date_type": "Enter a valid date",
    "date_from_datetime_parsing": "Enter a valid date",
    "datetime_parsing": "Enter a valid date and time",
    "datetime_type": "Enter a valid date and time",
    "datetime_from_date_parsing": "Enter a valid date and time",
    "time_parsing": "Enter a valid time",
    "time_type": "Enter a valid time",
    "url_parsing": "Enter a valid URL",
    "url_scheme": "Enter a URL starting with one of the allowed schemes",
    "url_type": "Enter a valid URL",
    "url_too_long": "This URL is too long",
    "string_type": "Enter text",
    "string_pattern_mismatch": "This is not in the expected format",
    "list_type": "Choose from the list",
    "set_type": "Choose from the list",
    "enum": "Choose one of the options",
    "literal_error": "Choose one of the options",
    "date_future": "Must be a date in the future",
    "date_past": "Must be a date in the past",
    "datetime_future": "Must be in the future",
    "datetime_past": "Must be in the past",
}

_WITH_CONTEXT: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "string_too_short": lambda c: f"Must be at least {_plural(c.get('min_length'), 'character')}",
    "string_too_long": lambda c: f"Must be at most {_plural(c.get('max_length'), 'character')}",
    "too_short": lambda c: f"Choose at least {c.get('min_length')}",
    "too_long": lambda c: f"Choose at most {c.get('max_length')}",
    "greater_than": lambda c: f"Must be greater than {c.get('gt')}",
    "greater_than_equal": lambda c: f"Must be at least {c.get('ge')}",
    "less_than": lambda c: f"Must be less than {c.get('lt')}",
    "less_than_equal": lambda c: f"Must be at most {c.get('le')}",
    "multiple_of": lambda c: f"Must be a multiple of {c.get('multiple_of')}",
    "decimal_max_places": lambda c: (
        f"Use at most {_plural(c.get('decimal_places'), 'decimal place')}"
    ),
    "decimal_max_digits": lambda c: f"Use at most {_plural(c.get('max_digits'), 'digit')}",
    "decimal_whole_digits": lambda c: (
        f"Use at most {_plural(c.get('whole_digits'), 'digit')} before the decimal point"
    ),
}


def friendly_message(error: ErrorDetails) -> str:
    """One pydantic error as a short sentence, e.g. "Must be at most 100 characters".

    Errors raised by the model's own validators (``value_error``/``assertion_error``) keep
    their message without pydantic's "Value error, " prefix; anything unmapped falls back to
    pydantic's own message, capitalised.
    """
    kind = error.get("type", "")
    if kind in _FIXED:
        return _FIXED[kind]
    if kind in _WITH_CONTEXT:
        return _WITH_CONTEXT[kind](_ctx(error))
    message = str(error.get("msg", "Invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if kind == "value_error" and "email" in message.lower():
        message = "Enter a valid email address"
    message = message[:1].upper() + message[1:]
    return truncate(message, MESSAGE_MAX)
