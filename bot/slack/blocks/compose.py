"""What each Slack message says, worked out from the engine's records.

``render.py`` draws Block Kit from plain values; this module picks which drawing an
interrupt needs from its *current* state (waiting, part-way through a quorum, decided,
expired, cancelled) and words the short texts around it (ephemeral replies, reminders,
the outcome of a run). Rendering from current state, never from the event that triggered
it, is what makes repeated or late notifications harmless: every update converges on the
same, final message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from bot.slack.blocks import kit
from bot.slack.blocks.layout import plain_text
from bot.slack.blocks.render import (
    Message,
    render_cancelled_message,
    render_expired_message,
    render_outcome_message,
    render_progress_message,
    render_request_message,
    render_superseded_message,
)
from bot.slack.blocks.responders import describe_responders
from bot.slack.blocks.text import escape, escape_truncate, humanize, mention, slack_date, truncate
from engine import (
    AlreadyResolved,
    DuplicateResponse,
    Engine,
    EventType,
    ExpiryAction,
    Interrupt,
    InterruptStatus,
    NotAuthorized,
    Run,
    RunDetail,
    RunStatus,
)

__all__ = [
    "Cancellation",
    "RequestInfo",
    "already_decided_text",
    "cancellation",
    "current_message",
    "duplicate_text",
    "finished_text",
    "not_authorized_text",
    "reminder_text",
    "request_info",
    "superseded_message",
]

SUMMARY_FIELDS = 10
SUMMARY_VALUE_MAX = 200
TEXT_MAX = 3000


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """An interrupt plus what its messages need from the workflow definition."""

    interrupt: Interrupt
    model: type[BaseModel]  # the resume model: what the approver supplies
    payload: BaseModel | Mapping[str, Any] | None  # what the approver is shown
    workflow: str  # workflow title
    step: str  # step title
    description: str | None


@dataclass(frozen=True, slots=True)
class Cancellation:
    """Who cancelled a run, and why (from the run's history)."""

    by: str | None
    reason: str | None


def request_info(engine: Engine, interrupt: Interrupt) -> RequestInfo:
    """Collect the models and titles of ``interrupt`` from its (version-pinned) workflow.

    Raises:
        WorkflowNotRegistered: if the run's workflow version is not loaded here.
    """
    step = engine.step_of(interrupt)
    workflow = engine.registry.get(interrupt.workflow, interrupt.version)
    payload: BaseModel | Mapping[str, Any] | None = interrupt.payload
    if step.suspend_model is not None and isinstance(interrupt.payload, Mapping):
        # The model instance lets the renderer use field titles as labels.
        try:
            payload = step.suspend_model.model_validate(interrupt.payload)
        except ValidationError:
            payload = interrupt.payload
    description = interrupt.meta.get("description")
    return RequestInfo(
        interrupt=interrupt,
        model=engine.resume_model(interrupt),
        payload=payload,
        workflow=workflow.title or humanize(workflow.name),
        step=interrupt.title or step.title,
        description=description if isinstance(description, str) else None,
    )


def cancellation(detail: RunDetail) -> Cancellation:
    """Who cancelled the run and why, read from its ``cancelled`` history entry."""
    for event in reversed(detail.events):
        if event.type is EventType.CANCELLED:
            by, reason = event.data.get("by"), event.data.get("reason")
            return Cancellation(by=str(by) if by else None, reason=str(reason) if reason else None)
    return Cancellation(by=None, reason=None)


def current_message(
    info: RequestInfo, ref: str, *, cancelled: Cancellation | None = None
) -> Message:
    """The message for the interrupt as it stands now.

    Waiting: payload, who may respond and the controls (with "1 of 2 approvals" part-way
    through a quorum). Decided: the controls replaced by the outcome, by whom and when.
    Expired or cancelled: said so, without controls.
    """
    i = info.interrupt
    common: dict[str, Any] = {
        "workflow": info.workflow,
        "step": info.step,
        "run_id": i.run_id,
        "payload": info.payload,
        "requester": i.requester,
    }
    when = i.resolved_at or i.created_at
    if i.status is InterruptStatus.PENDING:
        return _waiting(info, ref, common)
    if i.status is InterruptStatus.EXPIRED:
        return render_expired_message(expired_at=when, note=_expiry_note(i), **common)
    if i.status is InterruptStatus.CANCELLED:
        c = cancelled or Cancellation(by=None, reason=None)
        return render_cancelled_message(
            cancelled_at=when, cancelled_by=c.by, reason=c.reason, **common
        )
    return render_outcome_message(
        model=info.model,
        response=_response(info),
        decided_by=_deciders(i),
        decided_at=when,
        **common,
    )


def superseded_message(info: RequestInfo) -> Message:
    """A duplicate copy of the request, without controls (see ``render_superseded_message``)."""
    i = info.interrupt
    return render_superseded_message(
        workflow=info.workflow,
        step=info.step,
        run_id=i.run_id,
        payload=info.payload,
        requester=i.requester,
    )


def _waiting(info: RequestInfo, ref: str, common: dict[str, Any]) -> Message:
    i = info.interrupt
    approved_by = [r.actor for r in i.responses if r.approved]
    if approved_by:
        message = render_progress_message(
            model=info.model,
            ref=ref,
            approved_by=approved_by,
            required=i.quorum,
            expires_at=i.expires_at,
            description=info.description,
            **common,
        )
    else:
        message = render_request_message(
            model=info.model,
            ref=ref,
            expires_at=i.expires_at,
            description=info.description,
            **common,
        )
    needed = f" · {i.quorum} approvals needed" if i.quorum > 1 else ""
    who = kit.context(f"May respond: {describe_responders(i.responders)}{needed}")
    blocks = list(message.blocks)
    blocks.insert(len(blocks) - 1, who)  # just above the controls
    return Message(text=message.text, blocks=blocks)


def _response(info: RequestInfo) -> BaseModel | Mapping[str, Any]:
    data = info.interrupt.data
    if not isinstance(data, Mapping):
        return {}
    try:
        return info.model.model_validate(data)
    except ValidationError:
        return data


def _deciders(i: Interrupt) -> list[str]:
    if i.status is InterruptStatus.APPROVED and i.quorum > 1:
        return [r.actor for r in i.responses if r.approved]
    return [i.resolved_by] if i.resolved_by else []


def _expiry_note(i: Interrupt) -> str:
    if i.on_expiry is ExpiryAction.RESUME:
        return "The run continued with the default answer."
    if i.on_expiry is ExpiryAction.BAIL:
        return f"The run was stopped: {i.meta.get('_expiry_reason', 'expired')}"
    return "The step failed because nobody answered in time."


def already_decided_text(i: Interrupt | AlreadyResolved) -> str:
    """ "Already approved by @x at t" for a late or duplicate click."""
    status = i.status.value if isinstance(i, Interrupt) else i.status
    at = i.resolved_at
    when = f" {slack_date(at)}" if at else ""
    if status == InterruptStatus.EXPIRED.value:
        return f":hourglass: This request expired{when} without a decision."
    if status == InterruptStatus.CANCELLED.value:
        return f":no_entry_sign: This request was cancelled{when}."
    by = f" by {mention(i.resolved_by)}" if i.resolved_by else ""
    return f":lock: This request was already {status}{by}{when}. Nothing was changed."


def not_authorized_text(i: Interrupt, error: NotAuthorized) -> str:
    """Why the clicker may not respond, and who may."""
    who = describe_responders(i.responders)
    if i.requester == error.actor and not i.allow_requester:
        return (
            ":no_entry: You requested this, so you can't respond to it yourself. "
            f"It needs an answer from {who}."
        )
    return f":no_entry: You can't respond to this request. Only {who} may respond."


def duplicate_text(error: DuplicateResponse) -> str:
    """The clicker already counted toward the quorum."""
    return (
        ":information_source: You already responded to this request; each person counts "
        f"once ({error.approvals} of {error.needed} approvals so far)."
    )


def reminder_text(i: Interrupt) -> str:
    """A reminder posted in the request's thread."""
    who = describe_responders(i.responders)
    left = ""
    if i.quorum > 1:
        left = f" ({i.approvals} of {i.quorum} approvals so far)"
    expires = f" It expires {slack_date(i.expires_at)}." if i.expires_at else ""
    return f":bell: Reminder: this request is still waiting for {who}{left}.{expires}"


def finished_text(run: Run, cancelled: Cancellation | None = None) -> str:
    """The thread reply saying how the run ended."""
    head = f"Run `{escape_truncate(run.id, 100)}`"
    if run.status is RunStatus.COMPLETED:
        summary = _summary(run.output)
        text = f":white_check_mark: {head} completed." + (f"\n{summary}" if summary else "")
    elif run.status is RunStatus.REJECTED:
        reason = run.error.message if run.error else ""
        text = f":x: {head} was rejected" + (f": {escape_truncate(reason, 500)}" if reason else ".")
        # A typed bail result (ctx.bail(reason, result=...)) is the rejected run's output.
        summary = _summary(run.output)
        text += f"\n{summary}" if summary else ""
    elif run.status is RunStatus.FAILED:
        error = f"{run.error.type}: {run.error.message}" if run.error else "unknown error"
        text = f":warning: {head} failed: `{escape_truncate(error, 1000)}`"
    elif run.status is RunStatus.CANCELLED:
        c = cancelled or Cancellation(by=None, reason=None)
        by = f" by {mention(c.by)}" if c.by else ""
        why = f": {escape_truncate(c.reason, 500)}" if c.reason else "."
        text = f":no_entry_sign: {head} was cancelled{by}{why}"
    else:
        text = f"{head} is {run.status.value}."
    return truncate(text, TEXT_MAX)


def _summary(output: Any) -> str:
    if output is None:
        return ""
    if isinstance(output, Mapping):
        lines = [
            f"• *{escape_truncate(humanize(str(key)), 100)}*: {_summary_value(value)}"
            for key, value in list(output.items())[:SUMMARY_FIELDS]
        ]
        hidden = len(output) - SUMMARY_FIELDS
        if hidden > 0:
            lines.append(f"…and {hidden} more")
        return "\n".join(lines)
    return escape_truncate(plain_text(output), SUMMARY_VALUE_MAX * 2)


def _summary_value(value: Any) -> str:
    # A Slack user id (e.g. who approved) reads better as a mention; mention() escapes
    # anything that is not one.
    if isinstance(value, str) and len(value) < 30 and mention(value) != escape(value):
        return mention(value)
    return escape_truncate(plain_text(value), SUMMARY_VALUE_MAX)
