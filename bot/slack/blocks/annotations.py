"""Classify a field's type annotation: which ``FieldKind`` it is and, for choices, its options.

Handles the layers pydantic leaves in ``FieldInfo.annotation``: ``Annotated`` (where the
``SlackUser``/``SlackChannel`` markers and constraints live), ``X | None``, collections of
choices or IDs, ``Literal`` and ``Enum``.
"""

from __future__ import annotations

import datetime as dt
import enum
import types
import typing
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal, Union

import pydantic
import pydantic_core
from pydantic import BaseModel

from bot.errors import UnsupportedResumeModel
from bot.slack.blocks.fields import SlackChannel, SlackUser
from bot.slack.blocks.text import humanize_choice

__all__ = [
    "OPTION_VALUE_MAX",
    "SELECT_OPTIONS_MAX",
    "Choice",
    "FieldKind",
    "choice_key",
    "classify",
    "constraints",
    "unwrap",
]

SELECT_OPTIONS_MAX = 100  # static_select / multi_static_select
OPTION_VALUE_MAX = 150


class FieldKind(enum.StrEnum):
    """How one field is asked for; each kind maps to one Slack input element."""

    TEXT = "text"
    EMAIL = "email"
    URL = "url"
    INTEGER = "integer"
    NUMBER = "number"  # float or Decimal; decimals allowed
    BOOLEAN = "boolean"
    CHOICE = "choice"
    MULTI_CHOICE = "multi_choice"
    DATE = "date"
    DATETIME = "datetime"
    TIME = "time"
    USER = "user"
    USERS = "users"
    CHANNEL = "channel"
    CHANNELS = "channels"


@dataclass(frozen=True, slots=True)
class Choice:
    """One option of a ``Literal``/``Enum`` field.

    Attributes:
        value: The Python value handed to pydantic (a literal, or an ``Enum`` member).
        key: The string Slack carries as the option value (at most 150 characters).
        label: What the approver reads.
    """

    value: Any
    key: str
    label: str


def unwrap(
    annotation: Any, metadata: list[Any], model: str, name: str
) -> tuple[Any, bool, list[Any]]:
    """Strip ``Annotated`` and ``Optional`` layers, collecting metadata and nullability.

    Returns:
        The core type, whether ``None`` is allowed, and ``metadata`` extended in place.

    Raises:
        UnsupportedResumeModel: for a union of several non-None types.
    """
    core, nullable = annotation, False
    while True:
        origin = typing.get_origin(core)
        if origin is Annotated:
            core, *extra = typing.get_args(core)
            metadata.extend(extra)
        elif origin is Union or origin is types.UnionType:
            members = [arg for arg in typing.get_args(core) if arg is not type(None)]
            nullable = nullable or len(members) < len(typing.get_args(core))
            if len(members) != 1:
                raise UnsupportedResumeModel(
                    model=model,
                    field=name,
                    annotation=annotation,
                    reason="a union of several types is ambiguous; use one type (or X | None)",
                )
            core = members[0]
        else:
            return core, nullable, metadata


def classify(
    core: Any, metadata: list[Any], *, model: str, name: str
) -> tuple[FieldKind, tuple[Choice, ...], type]:
    """The kind of an unwrapped type, its options (for choices) and its number type.

    Raises:
        UnsupportedResumeModel: for nested models and types with no Slack input.
    """
    markers = {type(item) for item in metadata if isinstance(item, SlackUser | SlackChannel)}
    if typing.get_origin(core) in (list, set, frozenset, tuple):
        return _classify_many(core, markers, model=model, name=name)
    if markers:
        if core is not str:
            raise _unsupported(model, name, core, "SlackUser/SlackChannel mark str fields")
        return (FieldKind.USER if SlackUser in markers else FieldKind.CHANNEL), (), str
    choices = _choices(core, model=model, name=name)
    if choices is not None:
        return FieldKind.CHOICE, choices, str
    if isinstance(core, type) and issubclass(core, BaseModel):
        raise _unsupported(model, name, core, "nested models cannot be asked for; flatten it")
    kind = _scalar_kind(core)
    if kind is None:
        raise _unsupported(model, name, core, _SUPPORTED)
    return kind, (), core if kind in (FieldKind.INTEGER, FieldKind.NUMBER) else str


def _classify_many(
    core: Any, markers: set[type], *, model: str, name: str
) -> tuple[FieldKind, tuple[Choice, ...], type]:
    args = [arg for arg in typing.get_args(core) if arg is not Ellipsis]
    if len(args) != 1:
        raise _unsupported(model, name, core, "only homogeneous collections are supported")
    item, _, item_metadata = unwrap(args[0], [], model, name)
    markers |= {type(x) for x in item_metadata if isinstance(x, SlackUser | SlackChannel)}
    if markers and item is str:
        return (FieldKind.USERS if SlackUser in markers else FieldKind.CHANNELS), (), str
    choices = _choices(item, model=model, name=name)
    if choices is None:
        raise _unsupported(
            model, name, core, "lists must hold Literal/Enum values or SlackUser/SlackChannel IDs"
        )
    return FieldKind.MULTI_CHOICE, choices, str


def _choices(core: Any, *, model: str, name: str) -> tuple[Choice, ...] | None:
    if typing.get_origin(core) is Literal:
        values: list[Any] = list(typing.get_args(core))
        labels = [_literal_label(value) for value in values]
    elif isinstance(core, type) and issubclass(core, enum.Enum):
        values = list(core)
        labels = [_literal_label(member.value) for member in core]
    else:
        return None
    choices = tuple(
        Choice(value=value, key=choice_key(value), label=label)
        for value, label in zip(values, labels, strict=True)
    )
    _check_choices(choices, core, model=model, name=name)
    return choices


def _check_choices(choices: tuple[Choice, ...], core: Any, *, model: str, name: str) -> None:
    if len(choices) > SELECT_OPTIONS_MAX:
        raise _unsupported(model, name, core, f"more than {SELECT_OPTIONS_MAX} options")
    keys = [choice.key for choice in choices]
    if len(set(keys)) != len(keys):
        raise _unsupported(model, name, core, "two options have the same text")
    if any(len(key) > OPTION_VALUE_MAX for key in keys):
        raise _unsupported(model, name, core, f"an option is over {OPTION_VALUE_MAX} characters")


def choice_key(value: Any) -> str:
    """The option value Slack carries for a literal or Enum member."""
    raw = value.value if isinstance(value, enum.Enum) else value
    # Slack option values are strings; lower-case true/false is what people expect to read.
    if isinstance(raw, bool):
        return "true" if raw else "false"
    return str(raw)


def _literal_label(value: Any) -> str:
    raw = value.value if isinstance(value, enum.Enum) else value
    if isinstance(raw, bool):
        return "Yes" if raw else "No"
    return humanize_choice(raw) if isinstance(raw, str) else str(raw)


_SUPPORTED = (
    "supported types are str, int, float, Decimal, bool, date, datetime, time, Literal/Enum, "
    "lists of Literal/Enum, EmailStr, URL types, and str marked SlackUser()/SlackChannel()"
)


def _scalar_kind(core: Any) -> FieldKind | None:
    # bool before int: bool is a subclass of int.
    simple: list[tuple[Any, FieldKind]] = [
        (bool, FieldKind.BOOLEAN),
        (int, FieldKind.INTEGER),
        (float, FieldKind.NUMBER),
        (Decimal, FieldKind.NUMBER),
        (str, FieldKind.TEXT),
        (dt.datetime, FieldKind.DATETIME),  # before date: datetime is a subclass of date
        (dt.date, FieldKind.DATE),
        (dt.time, FieldKind.TIME),
    ]
    for candidate, kind in simple:
        if core is candidate:
            return kind
    if core is pydantic.EmailStr:
        return FieldKind.EMAIL
    # pydantic >= 2.10 makes HttpUrl & co. subclasses of AnyUrl; older versions annotate
    # pydantic_core.Url with UrlConstraints, so accept both.
    if isinstance(core, type) and issubclass(core, pydantic.AnyUrl | pydantic_core.Url):
        return FieldKind.URL
    return None


def constraints(metadata: list[Any]) -> dict[str, Any]:
    """Collect length and bound constraints from annotated-types / pydantic metadata."""
    found: dict[str, Any] = {}
    for item in metadata:
        for attr in ("min_length", "max_length", "ge", "gt", "le", "lt"):
            value = getattr(item, attr, None)
            if value is not None and attr not in found:
                found[attr] = value
    return found


def _unsupported(model: str, name: str, core: Any, reason: str) -> UnsupportedResumeModel:
    return UnsupportedResumeModel(model=model, field=name, annotation=core, reason=reason)
