"""Render approval requests, their outcomes and response modals as Block Kit.

Pure functions, no I/O: they take plain data (strings, datetimes, dicts, pydantic models and
classes) and return Block Kit JSON (messages, as plain dicts: ``bot.slack.blocks.kit``) or
``slack_sdk.models`` objects (modals) the caller posts with ``chat.postMessage`` /
``chat.update`` / ``views.open``. Whatever the payload, the result stays inside Slack's
limits (50 blocks, 10 fields of 2000 characters per section, 3000 per section text, ...):
long values are cut with an ellipsis and fields beyond a budget are summarised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from slack_sdk.models.blocks import ActionsBlock

from bot.slack import action_ids
from bot.slack.blocks import kit
from bot.slack.blocks.forms import (
    INLINE_CHOICES_MAX,
    ResumeSchema,
    Shape,
    check_renderable,
    describe_model,
)
from bot.slack.blocks.layout import Item, layout_items, payload_items
from bot.slack.blocks.modal import render_modal
from bot.slack.blocks.text import ELLIPSIS, escape_truncate, mention, slack_date, truncate
from bot.slack.blocks.values import format_value

__all__ = [
    "Message",
    "check_renderable",
    "render_cancelled_message",
    "render_expired_message",
    "render_modal",
    "render_outcome_message",
    "render_progress_message",
    "render_request_message",
    "render_superseded_message",
    "request_controls",
]

HEADER_MAX = 150
BUTTON_TEXT_MAX = 75
BUTTON_VALUE_MAX = 2000
BLOCK_ID_MAX = 255
SECTION_TEXT_MAX = 3000
FALLBACK_TEXT_MAX = 3000
ID_SHOWN_MAX = 100


@dataclass(frozen=True, slots=True)
class Message:
    """A rendered message: notification ``text`` plus ``blocks``.

    Post it with ``client.chat_postMessage(channel=..., text=m.text, blocks=m.blocks)``.
    """

    text: str
    blocks: list[kit.JsonBlock]

    def to_dict(self) -> dict[str, Any]:
        """The message as Slack JSON."""
        return {"text": self.text, "blocks": list(self.blocks)}


Payload = BaseModel | Mapping[str, Any] | None


def render_request_message(
    *,
    model: type[BaseModel],
    payload: Payload,
    ref: str,
    workflow: str,
    step: str,
    run_id: str,
    requester: str | None = None,
    expires_at: datetime | None = None,
    description: str | None = None,
) -> Message:
    """Render the message asking for a decision, with controls chosen from ``model``.

    Args:
        model: The resume model class: what the approver must supply.
        payload: What the approver is shown (a model instance or a mapping).
        ref: Opaque reference (e.g. a signed run/interrupt token) carried by every control;
            at most 2000 characters, or 255 when the controls are a select menu.
        workflow: Workflow title, shown in the header.
        step: Step title, shown in the header.
        run_id: Run id, shown in the context line.
        requester: Who asked: a Slack user ID (rendered as a mention) or any text.
        expires_at: When the request expires, shown in each reader's time zone.
        description: Optional longer text shown under the header.

    Raises:
        UnsupportedResumeModel: if ``model`` cannot be rendered.
        ValueError: if ``ref`` is empty or too long for the controls.
    """
    schema = describe_model(model)
    blocks = _top(workflow, step, payload, description)
    blocks.append(_context(run_id, requester, expires_at))
    blocks.append(_controls(schema, ref))
    verb = "Approval" if schema.shape is Shape.APPROVAL else "Response"
    return Message(text=_fallback(f"{verb} requested: {workflow}: {step}"), blocks=blocks)


def render_progress_message(
    *,
    model: type[BaseModel],
    payload: Payload,
    ref: str,
    workflow: str,
    step: str,
    run_id: str,
    approved_by: Sequence[str],
    required: int,
    requester: str | None = None,
    expires_at: datetime | None = None,
    description: str | None = None,
) -> Message:
    """Render a quorum request part-way: "1 of 2 approvals" with who approved; controls kept.

    Takes the arguments of ``render_request_message`` plus ``approved_by`` (user IDs so far)
    and ``required`` (approvals needed).
    """
    message = render_request_message(
        model=model,
        payload=payload,
        ref=ref,
        workflow=workflow,
        step=step,
        run_id=run_id,
        requester=requester,
        expires_at=expires_at,
        description=description,
    )
    who = ", ".join(mention(user) for user in approved_by) or "nobody yet"
    line = f":hourglass_flowing_sand: *{len(approved_by)} of {required} approvals* so far: {who}"
    progress = kit.section(truncate(line, SECTION_TEXT_MAX))
    blocks = list(message.blocks)
    blocks.insert(len(blocks) - 2, progress)  # above the context line and the controls
    return Message(text=message.text, blocks=blocks)


def render_outcome_message(
    *,
    model: type[BaseModel],
    response: BaseModel | Mapping[str, Any],
    decided_by: str | Sequence[str],
    decided_at: datetime,
    workflow: str,
    step: str,
    run_id: str,
    payload: Payload = None,
    requester: str | None = None,
) -> Message:
    """Render the request after it was answered: controls replaced by the outcome.

    Args:
        model: The resume model class.
        response: The validated response (a ``model`` instance or a mapping of field values).
        decided_by: The deciding user ID, or all of them for a quorum.
        decided_at: When the decision was made.
        workflow: Workflow title.
        step: Step title.
        run_id: Run id.
        payload: What the approver was shown, kept for the record.
        requester: Who asked.
    """
    schema = describe_model(model)
    values = _response_values(response)
    deciders = [decided_by] if isinstance(decided_by, str) else list(decided_by)
    headline = _headline(schema, values)
    who = ", ".join(mention(user) for user in deciders) or "someone"
    status = f"{headline} by {who} · {slack_date(decided_at)}"
    blocks = _top(workflow, step, payload, None)
    blocks.append(kit.section(truncate(status, SECTION_TEXT_MAX)))
    blocks.extend(_response_blocks(schema, values))
    blocks.append(_context(run_id, requester, None))
    plain = headline.replace("*", "")
    return Message(text=_fallback(f"{plain}: {workflow}: {step}"), blocks=blocks)


def render_expired_message(
    *,
    workflow: str,
    step: str,
    run_id: str,
    expired_at: datetime,
    payload: Payload = None,
    requester: str | None = None,
    note: str | None = None,
) -> Message:
    """Render a request that expired unanswered; ``note`` says what happened next."""
    status = f":hourglass: *Expired* {slack_date(expired_at)} without a decision."
    return _closed(workflow, step, run_id, payload, requester, status, note, "Expired")


def render_cancelled_message(
    *,
    workflow: str,
    step: str,
    run_id: str,
    cancelled_at: datetime,
    cancelled_by: str | None = None,
    reason: str | None = None,
    payload: Payload = None,
    requester: str | None = None,
) -> Message:
    """Render a request whose run was cancelled, by whom when known, with the reason."""
    by = f" by {mention(cancelled_by)}" if cancelled_by else ""
    status = f":no_entry_sign: *Cancelled*{by} · {slack_date(cancelled_at)}"
    return _closed(workflow, step, run_id, payload, requester, status, reason, "Cancelled")


def render_superseded_message(
    *,
    workflow: str,
    step: str,
    run_id: str,
    payload: Payload = None,
    requester: str | None = None,
) -> Message:
    """Render a duplicate copy of a request (posted twice after a failure), without
    controls: the other copy is the one to answer and the one kept up to date."""
    status = ":link: *Superseded*: this request was posted again; answer the other copy."
    return _closed(workflow, step, run_id, payload, requester, status, None, "Superseded")


def _closed(
    workflow: str,
    step: str,
    run_id: str,
    payload: Payload,
    requester: str | None,
    status: str,
    note: str | None,
    word: str,
) -> Message:
    if note:
        status += "\n>" + escape_truncate(note, SECTION_TEXT_MAX - len(status) - 2)
    blocks = _top(workflow, step, payload, None)
    blocks.append(kit.section(status))
    blocks.append(_context(run_id, requester, None))
    return Message(text=_fallback(f"{word}: {workflow}: {step}"), blocks=blocks)


def _top(
    workflow: str, step: str, payload: Payload, description: str | None
) -> list[kit.JsonBlock]:
    title = f"{workflow}: {step}" if workflow and step else (workflow or step or "Request")
    blocks = [kit.header(truncate(title, HEADER_MAX))]
    if description:
        blocks.append(kit.section(escape_truncate(description, SECTION_TEXT_MAX)))
    blocks.extend(layout_items(payload_items(payload)))
    return blocks


def _context(run_id: str, requester: str | None, expires_at: datetime | None) -> kit.JsonBlock:
    parts = [f"Run `{escape_truncate(run_id, ID_SHOWN_MAX)}`"]
    if requester:
        parts.append(f"Requested by {mention(requester)}")
    if expires_at is not None:
        parts.append(f"Expires {slack_date(expires_at)}")
    return kit.context(" · ".join(parts))


def request_controls(model: type[BaseModel], ref: str, *, block_id: str) -> ActionsBlock:
    """The same controls as the request message (same ``ref``, same action ids), in an
    actions block named ``block_id`` (a view needs unique block ids; a select menu keeps
    the reference as its block id, which is unique per request already)."""
    block = _controls(describe_model(model), ref)
    if block["block_id"] == action_ids.CONTROLS_BLOCK_ID:
        block["block_id"] = block_id
    return ActionsBlock(block_id=block["block_id"], elements=block["elements"])


def _controls(schema: ResumeSchema, ref: str) -> kit.JsonBlock:
    if not ref or len(ref) > BUTTON_VALUE_MAX:
        raise ValueError(f"ref must be 1..{BUTTON_VALUE_MAX} characters, got {len(ref)}")
    if schema.shape is Shape.APPROVAL:
        approve = action_ids.APPROVE_MODAL if schema.needs_modal else action_ids.APPROVE
        reject_modal = schema.needs_modal or bool(schema.required_on_reject)
        reject = action_ids.REJECT_MODAL if reject_modal else action_ids.REJECT
        elements = [
            kit.button("Approve", approve, ref, "primary"),
            kit.button("Reject", reject, ref, "danger"),
        ]
    elif schema.shape is Shape.CHOICE:
        return _choice_controls(schema, ref)
    elif schema.shape is Shape.ACKNOWLEDGE:
        elements = [_button("Acknowledge", action_ids.ACKNOWLEDGE, ref, "primary")]
    else:
        elements = [_button("Respond", action_ids.RESPOND, ref, "primary")]
    return kit.actions(elements, block_id=action_ids.CONTROLS_BLOCK_ID)


def _choice_controls(schema: ResumeSchema, ref: str) -> kit.JsonBlock:
    assert schema.choice_field is not None  # CHOICE shape always names its field
    spec = schema.field(schema.choice_field)
    if len(spec.choices) <= INLINE_CHOICES_MAX:
        buttons = [
            _button(choice.label, action_ids.CHOOSE_PREFIX + choice.key, ref, None)
            for choice in spec.choices
        ]
        return kit.actions(buttons, block_id=action_ids.CONTROLS_BLOCK_ID)
    # A select has no value of its own, so the reference rides in the block_id.
    if len(ref) > BLOCK_ID_MAX:
        raise ValueError(f"ref must be at most {BLOCK_ID_MAX} characters for a select menu")
    options = [kit.option(truncate(c.label, BUTTON_TEXT_MAX), c.key) for c in spec.choices]
    select = kit.static_select(
        action_ids.SELECT, truncate(f"Choose {spec.label.lower()}{ELLIPSIS}", 150), options
    )
    return kit.actions([select], block_id=ref)


def _button(text: str, action_id: str, ref: str, style: str | None) -> dict[str, Any]:
    return kit.button(truncate(text, BUTTON_TEXT_MAX), action_id, ref, style)


def _response_values(response: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(response, BaseModel):
        return {name: getattr(response, name) for name in type(response).model_fields}
    return dict(response)


def _headline(schema: ResumeSchema, values: Mapping[str, Any]) -> str:
    if schema.shape is Shape.APPROVAL and schema.decision_field:
        if values.get(schema.decision_field) is True:
            return ":white_check_mark: *Approved*"
        return ":x: *Rejected*"
    if schema.shape is Shape.CHOICE and schema.choice_field:
        spec = schema.field(schema.choice_field)
        shown = format_value(spec, values.get(schema.choice_field), limit=BUTTON_TEXT_MAX)
        return f":ballot_box_with_check: *{shown}* chosen"
    if schema.shape is Shape.ACKNOWLEDGE:
        return ":white_check_mark: *Acknowledged*"
    return ":white_check_mark: *Responded*"


def _response_blocks(schema: ResumeSchema, values: Mapping[str, Any]) -> list[kit.JsonBlock]:
    shown_in_headline = {schema.decision_field, schema.choice_field}
    items = [
        Item(label=spec.label, mrkdwn=format_value(spec, values[spec.name]))
        for spec in schema.fields
        if spec.name not in shown_in_headline and values.get(spec.name) not in (None, "", [])
    ]
    return layout_items(items, max_blocks=12)


def _fallback(text: str) -> str:
    return escape_truncate(text, FALLBACK_TEXT_MAX)
