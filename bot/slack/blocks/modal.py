"""Build the Slack modal that asks for a resume model, one input block per field.

Block ids and action ids are the field names, so ``view.state.values`` and pydantic errors
map straight back to fields. Use ``bot.slack.blocks.render.render_modal``; this module holds the
per-kind element builders.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from slack_sdk.models.blocks import (
    Block,
    CheckboxesElement,
    ContextBlock,
    ConversationMultiSelectElement,
    ConversationSelectElement,
    DatePickerElement,
    DateTimePickerElement,
    EmailInputElement,
    InputBlock,
    InputInteractiveElement,
    MarkdownTextObject,
    NumberInputElement,
    Option,
    PlainTextInputElement,
    RadioButtonsElement,
    SectionBlock,
    StaticMultiSelectElement,
    StaticSelectElement,
    TimePickerElement,
    UrlInputElement,
    UserMultiSelectElement,
    UserSelectElement,
)
from slack_sdk.models.views import View

from bot.slack.action_ids import modal_callback_id
from bot.slack.blocks.forms import (
    INLINE_CHOICES_MAX,
    TEXT_INPUT_MAX,
    FieldKind,
    FieldSpec,
    describe_model,
)
from bot.slack.blocks.text import escape_truncate, truncate

__all__ = ["render_modal"]

TITLE_MAX = 24
LABEL_MAX = 2000
PLACEHOLDER_MAX = 150
OPTION_TEXT_MAX = 75
PRIVATE_METADATA_MAX = 3000
INTRO_MAX = 3000
BOOL_TRUE, BOOL_FALSE = "true", "false"


def render_modal(
    *,
    model: type[BaseModel],
    ref: str,
    title: str,
    decision: bool | None = None,
    description: str | None = None,
    submit: str | None = None,
) -> View:
    """Render a modal asking for ``model``.

    Args:
        model: The resume model class (checked with ``check_renderable``).
        ref: Opaque reference from the caller (e.g. a signed run/interrupt token); stored as
            ``private_metadata`` and returned untouched on submit. At most 3000 characters.
        title: Modal title; cut to Slack's 24 characters with an ellipsis.
        decision: Set when Approve/Reject was clicked on an approval that needs more fields:
            the decision field is then not asked again, and the ``callback_id`` records it.
        description: Optional text shown above the inputs (escaped mrkdwn).
        submit: Submit button text; defaults to Approve/Reject for a decision, else Submit.

    Returns:
        A ``slack_sdk.models.views.View`` of type ``modal``.

    Raises:
        UnsupportedResumeModel: if the model cannot be rendered.
        ValueError: if ``ref`` is empty or longer than ``private_metadata`` allows.
    """
    if not ref or len(ref) > PRIVATE_METADATA_MAX:
        raise ValueError(f"ref must be 1..{PRIVATE_METADATA_MAX} characters, got {len(ref)}")
    schema = describe_model(model)
    blocks: list[Block] = _intro(description, decision)
    blocks.extend(input_block(spec) for spec in schema.form_fields(decision=decision))
    if not blocks:
        # A view needs at least one block; this only happens for a model without fields.
        blocks.append(SectionBlock(text=MarkdownTextObject(text="Press *Submit* to respond.")))
    if submit is None:
        submit = "Submit" if decision is None else ("Approve" if decision else "Reject")
    return View(
        type="modal",
        callback_id=modal_callback_id(decision),
        title=truncate(title.strip() or "Respond", TITLE_MAX),
        submit=truncate(submit, TITLE_MAX),
        close="Cancel",
        private_metadata=ref,
        blocks=blocks,
    )


def _intro(description: str | None, decision: bool | None) -> list[Block]:
    blocks: list[Block] = []
    if description:
        text = escape_truncate(description, INTRO_MAX)
        blocks.append(SectionBlock(text=MarkdownTextObject(text=text)))
    if decision is not None:
        verb = "approving" if decision else "rejecting"
        line = f"You are *{verb}* this request. Fill in the fields below to confirm."
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=line)]))
    return blocks


def input_block(spec: FieldSpec) -> InputBlock:
    """One ``input`` block for a field; ``block_id`` and ``action_id`` are the field name."""
    return InputBlock(
        block_id=spec.name,
        label=truncate(spec.label, LABEL_MAX),
        hint=truncate(spec.hint, LABEL_MAX) if spec.hint else None,
        optional=spec.optional,
        element=_element(spec),
    )


def _element(spec: FieldSpec) -> InputInteractiveElement:
    builder = _BUILDERS[spec.kind]
    return builder(spec)


def _placeholder(spec: FieldSpec, fallback: str) -> str:
    return truncate(spec.placeholder or fallback, PLACEHOLDER_MAX)


def _default(spec: FieldSpec) -> Any:
    return spec.default if spec.has_default else None


def _text(spec: FieldSpec) -> InputInteractiveElement:
    # Slack caps both lengths at 3000; a longer model limit is still enforced by pydantic.
    max_length = min(spec.max_length, TEXT_INPUT_MAX) if spec.max_length else None
    min_length = spec.min_length or None
    default = _default(spec)
    return PlainTextInputElement(
        action_id=spec.name,
        placeholder=truncate(spec.placeholder, PLACEHOLDER_MAX) if spec.placeholder else None,
        initial_value=str(default) if default is not None else None,
        multiline=spec.multiline or None,
        min_length=min_length,
        max_length=max_length,
    )


def _email(spec: FieldSpec) -> InputInteractiveElement:
    default = _default(spec)
    return EmailInputElement(
        action_id=spec.name,
        initial_value=str(default) if default is not None else None,
        placeholder=truncate(spec.placeholder, PLACEHOLDER_MAX) if spec.placeholder else None,
    )


def _url(spec: FieldSpec) -> InputInteractiveElement:
    default = _default(spec)
    return UrlInputElement(
        action_id=spec.name,
        initial_value=str(default) if default is not None else None,
        placeholder=truncate(spec.placeholder, PLACEHOLDER_MAX) if spec.placeholder else None,
    )


def _number(spec: FieldSpec) -> InputInteractiveElement:
    default = _default(spec)
    return NumberInputElement(
        action_id=spec.name,
        is_decimal_allowed=spec.kind is FieldKind.NUMBER,
        initial_value=_number_text(default),
        min_value=_number_text(spec.minimum),
        max_value=_number_text(spec.maximum),
        placeholder=truncate(spec.placeholder, PLACEHOLDER_MAX) if spec.placeholder else None,
    )


def _number_text(value: Any) -> str | None:
    # Slack takes number_input bounds and values as strings; str() keeps Decimals exact.
    return None if value is None else str(value)


def _boolean(spec: FieldSpec) -> InputInteractiveElement:
    if spec.required:
        # No default: ask Yes/No explicitly. A lone checkbox could not tell "no" from "skipped",
        # and a required checkboxes input would force the box to be ticked.
        yes = Option(value=BOOL_TRUE, text="Yes")
        no = Option(value=BOOL_FALSE, text="No")
        return RadioButtonsElement(action_id=spec.name, options=[yes, no])
    box = Option(value=BOOL_TRUE, text=truncate(spec.label, OPTION_TEXT_MAX))
    return CheckboxesElement(
        action_id=spec.name,
        options=[box],
        initial_options=[box] if _default(spec) is True else None,
    )


def _options(spec: FieldSpec) -> list[Option]:
    return [
        Option(value=choice.key, text=truncate(choice.label, OPTION_TEXT_MAX))
        for choice in spec.choices
    ]


def _selected(spec: FieldSpec, options: Sequence[Option], values: Sequence[Any]) -> list[Option]:
    keys = set()
    for value in values:
        choice = spec.choice_for_value(value)
        if choice is not None:
            keys.add(choice.key)
    return [option for option in options if option.value in keys]


def _choice(spec: FieldSpec) -> InputInteractiveElement:
    options = _options(spec)
    default = _default(spec)
    initial = _selected(spec, options, [default] if default is not None else [])
    if len(options) <= INLINE_CHOICES_MAX:
        return RadioButtonsElement(
            action_id=spec.name, options=options, initial_option=initial[0] if initial else None
        )
    return StaticSelectElement(
        action_id=spec.name,
        placeholder=_placeholder(spec, "Choose an option"),
        options=options,
        initial_option=initial[0] if initial else None,
    )


def _multi_choice(spec: FieldSpec) -> InputInteractiveElement:
    options = _options(spec)
    default = _default(spec)
    initial = _selected(spec, options, list(default) if default else []) or None
    if len(options) <= INLINE_CHOICES_MAX:
        return CheckboxesElement(action_id=spec.name, options=options, initial_options=initial)
    return StaticMultiSelectElement(
        action_id=spec.name,
        placeholder=_placeholder(spec, "Choose options"),
        options=options,
        initial_options=initial,
        max_selected_items=spec.max_length,
    )


def _date(spec: FieldSpec) -> InputInteractiveElement:
    default = _default(spec)
    return DatePickerElement(
        action_id=spec.name,
        placeholder=_placeholder(spec, "Pick a date"),
        initial_date=default.isoformat() if isinstance(default, dt.date) else None,
    )


def _datetime(spec: FieldSpec) -> InputInteractiveElement:
    default = _default(spec)
    initial: int | None = None
    if isinstance(default, dt.datetime):
        # Naive defaults are read as UTC, the same way parsing reads Slack's Unix seconds.
        aware = default if default.tzinfo else default.replace(tzinfo=dt.UTC)
        initial = int(aware.timestamp())
    return DateTimePickerElement(action_id=spec.name, initial_date_time=initial)


def _time(spec: FieldSpec) -> InputInteractiveElement:
    default = _default(spec)
    return TimePickerElement(
        action_id=spec.name,
        placeholder=_placeholder(spec, "Pick a time"),
        initial_time=default.strftime("%H:%M") if isinstance(default, dt.time) else None,
    )


def _user(spec: FieldSpec) -> InputInteractiveElement:
    return UserSelectElement(
        action_id=spec.name,
        placeholder=_placeholder(spec, "Choose a person"),
        initial_user=_default(spec),
    )


def _users(spec: FieldSpec) -> InputInteractiveElement:
    default = _default(spec)
    return UserMultiSelectElement(
        action_id=spec.name,
        placeholder=_placeholder(spec, "Choose people"),
        initial_users=list(default) if default else None,
        max_selected_items=spec.max_length,
    )


def _channel(spec: FieldSpec) -> InputInteractiveElement:
    return ConversationSelectElement(
        action_id=spec.name,
        placeholder=_placeholder(spec, "Choose a conversation"),
        initial_conversation=_default(spec),
    )


def _channels(spec: FieldSpec) -> InputInteractiveElement:
    default = _default(spec)
    return ConversationMultiSelectElement(
        action_id=spec.name,
        placeholder=_placeholder(spec, "Choose conversations"),
        initial_conversations=list(default) if default else None,
        max_selected_items=spec.max_length,
    )


_BUILDERS = {
    FieldKind.TEXT: _text,
    FieldKind.EMAIL: _email,
    FieldKind.URL: _url,
    FieldKind.INTEGER: _number,
    FieldKind.NUMBER: _number,
    FieldKind.BOOLEAN: _boolean,
    FieldKind.CHOICE: _choice,
    FieldKind.MULTI_CHOICE: _multi_choice,
    FieldKind.DATE: _date,
    FieldKind.DATETIME: _datetime,
    FieldKind.TIME: _time,
    FieldKind.USER: _user,
    FieldKind.USERS: _users,
    FieldKind.CHANNEL: _channel,
    FieldKind.CHANNELS: _channels,
}
