"""Turn Slack interactions back into resume-model values, and validate them for people.

* ``parse_action`` reads a ``block_actions`` click on a rendered request message.
* ``parse_view_submission`` / ``parse_state_values`` read a submitted modal. State values are
  read as plain dicts, never through ``slack_sdk.models.views.ViewState``, which raises
  ``TypeError`` on datetimepicker, timepicker-with-timezone, file and rich-text values.
* ``validate_submission`` validates with pydantic and reports errors keyed by block id in
  plain words, ready for ``ack(response_action="errors", errors=...)``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ValidationError

from bot.errors import InvalidSubmission, UnknownAction
from bot.slack import action_ids
from bot.slack.blocks.error_text import friendly_message
from bot.slack.blocks.forms import FieldKind, FieldSpec, ResumeSchema, Shape, describe_model

__all__ = [
    "Click",
    "Submission",
    "parse_action",
    "parse_state_values",
    "parse_view_submission",
    "validate_submission",
]

# Where each element type keeps its value in view.state.values (slack-facts §1.5).
_VALUE_KEYS = {
    "plain_text_input": "value",
    "email_text_input": "value",
    "url_text_input": "value",
    "number_input": "value",
    "static_select": "selected_option",
    "external_select": "selected_option",
    "radio_buttons": "selected_option",
    "multi_static_select": "selected_options",
    "multi_external_select": "selected_options",
    "checkboxes": "selected_options",
    "datepicker": "selected_date",
    "timepicker": "selected_time",
    "datetimepicker": "selected_date_time",
    "users_select": "selected_user",
    "multi_users_select": "selected_users",
    "conversations_select": "selected_conversation",
    "multi_conversations_select": "selected_conversations",
    "channels_select": "selected_channel",
    "multi_channels_select": "selected_channels",
}
_EMPTY: tuple[Any, ...] = (None, "", [])


@dataclass(frozen=True, slots=True)
class Click:
    """What a click on a request message means.

    Attributes:
        ref: The caller's opaque reference carried by the control.
        opens_modal: The click cannot answer on its own: open ``render_modal`` (with
            ``decision``) using the payload's ``trigger_id``.
        decision: For approval models, the decision the clicked button stands for.
        values: Field values the click supplies (validate with ``validate_submission``).
    """

    ref: str
    opens_modal: bool
    decision: bool | None = None
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Submission:
    """A submitted response modal: the caller's ``ref``, any preset decision, and the values."""

    ref: str
    decision: bool | None
    values: dict[str, Any]


def parse_action(*, model: type[BaseModel], action: Mapping[str, Any]) -> Click:
    """Read one action object (``payload["actions"][0]``) from a click on a request message.

    Raises:
        UnknownAction: if the action is not one Signoff renders for ``model``.
    """
    schema = describe_model(model)
    action_id = str(action.get("action_id", ""))
    ref = str(action.get("value") or "")
    decision_field = schema.decision_field
    if action_id in (action_ids.APPROVE, action_ids.REJECT) and decision_field:
        decision = action_id == action_ids.APPROVE
        return Click(ref=ref, opens_modal=False, decision=decision)
    if action_id in (action_ids.APPROVE_MODAL, action_ids.REJECT_MODAL) and decision_field:
        decision = action_id == action_ids.APPROVE_MODAL
        return Click(ref=ref, opens_modal=True, decision=decision)
    if action_id == action_ids.RESPOND:
        return Click(ref=ref, opens_modal=True)
    if action_id == action_ids.ACKNOWLEDGE and schema.shape is Shape.ACKNOWLEDGE:
        return Click(ref=ref, opens_modal=False)
    if action_id.startswith(action_ids.CHOOSE_PREFIX):
        key = action_id.removeprefix(action_ids.CHOOSE_PREFIX)
        return Click(ref=ref, opens_modal=False, values=_chosen(schema, action_id, key))
    if action_id == action_ids.SELECT:
        selected = action.get("selected_option") or {}
        key = str(selected.get("value", ""))
        ref = str(action.get("block_id") or "")  # a select carries the ref in its block_id
        return Click(ref=ref, opens_modal=False, values=_chosen(schema, action_id, key))
    raise UnknownAction(action_id, f"not a control rendered for {model.__name__}")


def _chosen(schema: ResumeSchema, action_id: str, key: str) -> dict[str, Any]:
    if schema.choice_field is None:
        raise UnknownAction(action_id, "the resume model has no single choice field")
    choice = schema.field(schema.choice_field).choice_for_key(key)
    if choice is None:
        raise UnknownAction(action_id, f"{key!r} is not one of the options")
    return {schema.choice_field: choice.value}


def parse_view_submission(*, model: type[BaseModel], view: Mapping[str, Any]) -> Submission:
    """Read a ``view_submission`` payload's ``view``: reference, preset decision and values.

    Raises:
        UnknownAction: if the view's ``callback_id`` is not a Signoff response modal.
    """
    callback_id = str(view.get("callback_id", ""))
    match = action_ids.CALLBACK_ID_PATTERN.match(callback_id)
    if match is None:
        raise UnknownAction(callback_id, "not a Signoff response modal")
    decision = None if match.group(1) is None else match.group(1) == "approve"
    values = (view.get("state") or {}).get("values") or {}
    return Submission(
        ref=str(view.get("private_metadata") or ""),
        decision=decision,
        values=parse_state_values(model=model, values=values),
    )


def parse_state_values(
    *, model: type[BaseModel], values: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """Turn ``view.state.values`` into ``{field_name: value}`` for ``model``.

    Blocks that are not fields of the model are ignored. An input left empty is left out when
    the field has a default (so pydantic applies it), becomes ``None`` when the field accepts
    ``None``, and is otherwise left out so validation reports it as required. Values are
    converted to the field's Python type where that is unambiguous (numbers, dates, choices);
    anything that does not convert is passed through for pydantic to reject in words.
    """
    schema = describe_model(model)
    parsed: dict[str, Any] = {}
    for spec in schema.fields:
        block = values.get(spec.name)
        if not block:
            continue
        state = next(iter(block.values()), None)  # one element per input block
        if not isinstance(state, Mapping):
            continue
        raw = _raw_value(state)
        value = _convert(spec, raw)
        if value in _EMPTY:
            if spec.required and spec.nullable:
                parsed[spec.name] = None
            continue
        parsed[spec.name] = value
    return parsed


def _raw_value(state: Mapping[str, Any]) -> Any:
    key = _VALUE_KEYS.get(str(state.get("type")))
    if key is None:
        return None
    raw = state.get(key)
    if key == "selected_option":
        return raw.get("value") if isinstance(raw, Mapping) else None
    if key == "selected_options":
        return [option.get("value") for option in raw or [] if isinstance(option, Mapping)]
    return raw


def _convert(spec: FieldSpec, raw: Any) -> Any:
    if raw in _EMPTY:
        # An untouched checkbox means "no"; an unanswered Yes/No radio stays empty.
        return False if spec.kind is FieldKind.BOOLEAN and not spec.required else raw
    kind = spec.kind
    if kind is FieldKind.BOOLEAN:
        return raw == "true" or (isinstance(raw, list) and "true" in raw)
    if kind is FieldKind.CHOICE:
        choice = spec.choice_for_key(str(raw))
        return choice.value if choice else raw
    if kind is FieldKind.MULTI_CHOICE and isinstance(raw, list):
        chosen = [spec.choice_for_key(str(key)) for key in raw]
        return [c.value if c else key for c, key in zip(chosen, raw, strict=True)]
    if kind is FieldKind.INTEGER:
        return _try(int, raw)
    if kind is FieldKind.NUMBER:
        return _try(Decimal if spec.number_type is Decimal else float, raw)
    if kind is FieldKind.DATE:
        return _try(dt.date.fromisoformat, raw)
    if kind is FieldKind.TIME:
        return _try(dt.time.fromisoformat, raw)
    if kind is FieldKind.DATETIME and isinstance(raw, int | float):
        return dt.datetime.fromtimestamp(raw, tz=dt.UTC)
    return raw


def _try(convert: Any, raw: Any) -> Any:
    try:
        return convert(raw)
    except (ValueError, TypeError, InvalidOperation):
        return raw


def validate_submission(
    model: type[BaseModel], values: Mapping[str, Any], *, decision: bool | None = None
) -> BaseModel:
    """Validate ``values`` (keyed by field name) into a ``model`` instance.

    Args:
        model: The resume model class.
        values: From ``parse_state_values`` or a ``Click``.
        decision: A decision made by the clicked button, merged into the decision field.

    Raises:
        InvalidSubmission: with ``{block_id: message}`` in plain words. Errors that belong to
            no input in the modal (model-level validators, the preset decision) are shown on
            the first input.
    """
    schema = describe_model(model)
    data = dict(values)
    if decision is not None and schema.decision_field is not None:
        data[schema.decision_field] = decision
    by_key = {spec.input_key: spec for spec in schema.fields}
    key_for = {spec.name: spec.input_key for spec in schema.fields}
    try:
        return model.model_validate({key_for.get(k, k): v for k, v in data.items()})
    except ValidationError as exc:
        shown = [spec.name for spec in schema.form_fields(decision=decision)]
        fallback = shown[0] if shown else (schema.fields[0].name if schema.fields else "")
        errors: dict[str, str] = {}
        for error in exc.errors(include_url=False):
            loc = error.get("loc") or ()
            spec = by_key.get(str(loc[0])) if loc else None
            block_id = spec.name if spec is not None and spec.name in shown else fallback
            errors.setdefault(block_id, friendly_message(error))
        raise InvalidSubmission(errors) from exc
