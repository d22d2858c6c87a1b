"""A resume model as an HTML form, and a submitted form back to a validated answer.

The form is read from the same ``describe_model`` (``FieldSpec``s and ``Shape``) as the
Slack message and modal, and validated by the same ``validate_submission``, so a field
gets exactly the message it gets in Slack ("Must be at least 5 characters"). The shape
decides the buttons, as in Slack:

* ``APPROVAL``: Approve and Reject buttons (the decision), with the other fields above.
* ``CHOICE``: one button per option (a menu above ``INLINE_CHOICES_MAX``).
* ``ACKNOWLEDGE``: one Acknowledge button.
* ``FORM``: every field and a Submit button.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from multidict import MultiMapping
from pydantic import BaseModel

from bot.slack.blocks.forms import (
    INLINE_CHOICES_MAX,
    FieldKind,
    FieldSpec,
    ResumeSchema,
    Shape,
    describe_model,
)
from bot.slack.blocks.parse import validate_submission

__all__ = [
    "DECISION_INPUT",
    "FormButton",
    "WebField",
    "WebForm",
    "parse_answer",
    "web_form",
]

DECISION_INPUT = "_decision"
"""The name of the Approve/Reject (or option) buttons; field inputs use the field names."""

_SPLIT = re.compile(r"[\s,]+")


@dataclass(frozen=True, slots=True)
class FormButton:
    """A submit button: its label, the value it sends as ``_decision``, and its style."""

    label: str
    value: str
    style: str = ""  # "primary" | "danger" | ""


@dataclass(frozen=True, slots=True)
class WebField:
    """One input of the form, ready for the template (``widget`` picks the markup)."""

    name: str
    label: str
    hint: str | None
    widget: str  # text, textarea, email, url, number, date, time, datetime, yesno,
    # checkbox, radio, select, checkboxes, multiselect, ids
    required: bool
    value: Any = None  # what to show: the submitted value, else the default
    options: tuple[tuple[str, str], ...] = ()  # (key, label)
    step: str = "any"
    placeholder: str | None = None

    def selected(self, key: str) -> bool:
        """Whether option ``key`` is chosen in ``value``."""
        if isinstance(self.value, list | tuple | set | frozenset):
            return key in self.value
        return bool(self.value == key)


@dataclass(frozen=True, slots=True)
class WebForm:
    """The form for one resume model: its inputs, buttons, and per-field errors."""

    shape: Shape
    fields: tuple[WebField, ...]
    buttons: tuple[FormButton, ...]
    errors: dict[str, str] = field(default_factory=dict)


def _widget(spec: FieldSpec) -> str:
    kind = spec.kind
    simple = {
        FieldKind.EMAIL: "email",
        FieldKind.URL: "url",
        FieldKind.INTEGER: "number",
        FieldKind.NUMBER: "number",
        FieldKind.DATE: "date",
        FieldKind.TIME: "time",
        FieldKind.DATETIME: "datetime",
        FieldKind.USER: "text",
        FieldKind.CHANNEL: "text",
        FieldKind.USERS: "ids",
        FieldKind.CHANNELS: "ids",
    }
    if kind in simple:
        return simple[kind]
    if kind is FieldKind.TEXT:
        return "textarea" if spec.multiline else "text"
    if kind is FieldKind.BOOLEAN:
        return "yesno" if spec.required else "checkbox"
    many = len(spec.choices) > INLINE_CHOICES_MAX
    if kind is FieldKind.CHOICE:
        return "select" if many else "radio"
    return "multiselect" if many else "checkboxes"  # MULTI_CHOICE


def _shown_value(spec: FieldSpec, submitted: MultiMapping[str] | None) -> Any:
    if submitted is not None:
        if spec.kind is FieldKind.MULTI_CHOICE:
            return list(submitted.getall(spec.name, []))
        return submitted.get(spec.name, "")
    if not spec.has_default:
        return None
    default = spec.default
    if spec.kind is FieldKind.BOOLEAN:
        return "true" if default else "false"
    if spec.choices:
        if isinstance(default, list | tuple | set | frozenset):
            return [c.key for v in default if (c := spec.choice_for_value(v)) is not None]
        choice = spec.choice_for_value(default)
        return choice.key if choice is not None else None
    if isinstance(default, list | tuple):
        return ", ".join(str(v) for v in default)
    if isinstance(default, dt.datetime):
        return default.strftime("%Y-%m-%dT%H:%M")
    return str(default)


def _web_field(spec: FieldSpec, submitted: MultiMapping[str] | None) -> WebField:
    step = "1" if spec.kind is FieldKind.INTEGER else "any"
    hint = spec.hint
    if spec.kind is FieldKind.DATETIME:
        hint = f"{hint} (UTC)" if hint else "UTC"
    elif spec.kind in (FieldKind.USERS, FieldKind.CHANNELS):
        hint = hint or "Slack ids, separated by commas"
    return WebField(
        name=spec.name,
        label=spec.label,
        hint=hint,
        widget=_widget(spec),
        required=not spec.optional,
        value=_shown_value(spec, submitted),
        options=tuple((c.key, c.label) for c in spec.choices),
        step=step,
        placeholder=spec.placeholder,
    )


def _buttons(schema: ResumeSchema) -> tuple[tuple[FormButton, ...], frozenset[str]]:
    """The submit buttons, and the fields the buttons answer (not shown as inputs)."""
    if schema.shape is Shape.APPROVAL and schema.decision_field is not None:
        buttons = (
            FormButton("Approve", "approve", "primary"),
            FormButton("Reject", "reject", "danger"),
        )
        return buttons, frozenset({schema.decision_field})
    if schema.shape is Shape.CHOICE and schema.choice_field is not None:
        spec = schema.field(schema.choice_field)
        if len(spec.choices) <= INLINE_CHOICES_MAX:
            options = tuple(FormButton(c.label, f"choose:{c.key}") for c in spec.choices)
            return options, frozenset({spec.name})
        return (FormButton("Submit", "submit", "primary"),), frozenset()
    if schema.shape is Shape.ACKNOWLEDGE:
        return (FormButton("Acknowledge", "acknowledge", "primary"),), frozenset()
    return (FormButton("Submit", "submit", "primary"),), frozenset()


def web_form(
    model: type[BaseModel],
    *,
    submitted: MultiMapping[str] | None = None,
    errors: Mapping[str, str] | None = None,
) -> WebForm:
    """The form asking for ``model``, refilled with ``submitted`` values when re-shown."""
    schema = describe_model(model)
    buttons, answered = _buttons(schema)
    fields = tuple(_web_field(s, submitted) for s in schema.fields if s.name not in answered)
    return WebForm(schema.shape, fields, buttons, dict(errors or {}))


def parse_answer(model: type[BaseModel], form: MultiMapping[str]) -> BaseModel:
    """The submitted form as a validated ``model`` instance.

    Empty inputs follow the Slack modal's rules (``parse_state_values``): left out when
    the field has a default, ``None`` when the field accepts it, else reported missing.

    Raises:
        InvalidSubmission: ``errors`` by field name, worded as in the Slack modal.
    """
    schema = describe_model(model)
    pressed = form.get(DECISION_INPUT, "")
    decision: bool | None = None
    values: dict[str, Any] = {}
    if schema.shape is Shape.APPROVAL and pressed in ("approve", "reject"):
        decision = pressed == "approve"
    if schema.choice_field is not None and pressed.startswith("choose:"):
        spec = schema.field(schema.choice_field)
        choice = spec.choice_for_key(pressed.removeprefix("choose:"))
        values[spec.name] = choice.value if choice is not None else pressed
    for spec in schema.fields:
        if spec.name in values or (decision is not None and spec.name == schema.decision_field):
            continue
        raw: Any = (
            list(form.getall(spec.name, []))
            if spec.kind is FieldKind.MULTI_CHOICE
            else form.get(spec.name, "")
        )
        value = _convert(spec, raw)
        if value in (None, "", []):
            if spec.required and spec.nullable:
                values[spec.name] = None
            continue
        values[spec.name] = value
    return validate_submission(model, values, decision=decision)


def _convert(spec: FieldSpec, raw: Any) -> Any:
    kind = spec.kind
    if raw in ("", []):
        # An unticked optional checkbox means "no", as in the Slack modal.
        return False if kind is FieldKind.BOOLEAN and not spec.required else raw
    if kind is FieldKind.BOOLEAN:
        return raw == "true"
    if kind is FieldKind.CHOICE:
        choice = spec.choice_for_key(str(raw))
        return choice.value if choice else raw
    if kind is FieldKind.MULTI_CHOICE:
        chosen = [spec.choice_for_key(str(key)) for key in raw]
        return [c.value if c else key for c, key in zip(chosen, raw, strict=True)]
    if kind in (FieldKind.USERS, FieldKind.CHANNELS):
        return [part for part in _SPLIT.split(str(raw)) if part]
    converters: dict[FieldKind, Any] = {
        FieldKind.INTEGER: int,
        FieldKind.NUMBER: Decimal if spec.number_type is Decimal else float,
        FieldKind.DATE: dt.date.fromisoformat,
        FieldKind.TIME: dt.time.fromisoformat,
        FieldKind.DATETIME: _utc_datetime,
    }
    convert = converters.get(kind)
    if convert is None:
        return raw
    try:
        return convert(raw)
    except (ValueError, TypeError, InvalidOperation):
        return raw  # pydantic rejects it in words


def _utc_datetime(raw: str) -> dt.datetime:
    # <input type="datetime-local"> has no zone; the form says UTC.
    value = dt.datetime.fromisoformat(raw)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
