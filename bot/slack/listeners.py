"""Thin bolt listeners for clicks on request messages and submitted response modals.

Each one: ack, verify the signed reference, ask the engine, answer the person. The engine
decides everything that matters (is it still pending, may this person answer, is the
answer valid, who won a race); these handlers only translate. Message updates are not
made here but by the notifier, from the outbox, so every path that resolves an interrupt
(Slack, API, expiry, cancel) updates Slack the same way.

Timing (Slack's 3 s): the app runs with ``process_before_response=True``, so bolt sends
the HTTP response as soon as a listener returns (its default polls for ``ack()`` every
10 ms instead). A click is acked and its work handed to ``after_ack``, a task that runs
after the response is sent. A modal submission must be answered *with* its validation
errors, so it resumes before acking, bounded by ``SUBMIT_BUDGET``: if the engine is
slower, the modal is acked with a notice and the resume still completes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping
from functools import partial
from typing import Any

from pydantic import BaseModel
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import MarkdownTextObject, SectionBlock
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import InvalidReference, InvalidSubmission, UnknownAction
from bot.slack import action_ids
from bot.slack.blocks.compose import (
    already_decided_text,
    duplicate_text,
    not_authorized_text,
    request_info,
)
from bot.slack.blocks.forms import describe_model
from bot.slack.blocks.parse import (
    Submission,
    parse_action,
    parse_view_submission,
    validate_submission,
)
from bot.slack.blocks.render import render_modal
from bot.slack.blocks.text import escape_truncate
from bot.slack.deps import Deps
from engine import (
    AlreadyResolved,
    DuplicateResponse,
    Interrupt,
    InterruptNotFound,
    InterruptStatus,
    NotAuthorized,
    ResumeOutcome,
    ResumeRejected,
    ResumeValidationError,
    RunNotFound,
    SignoffError,
    WorkflowNotRegistered,
)

__all__ = [
    "SUBMIT_BUDGET",
    "after_ack",
    "handle_click",
    "handle_submission",
    "register_listeners",
]

log = logging.getLogger("signoff.bot.listeners")

SUBMIT_BUDGET = 2.0  # seconds a modal submission may spend before it must be acked
INVALID_REF_TEXT = (
    ":warning: This control is not valid: its reference failed verification "
    "(altered, or from another Signoff installation). Nothing was changed."
)
GONE_TEXT = ":warning: This request no longer exists. Nothing was changed."
NOT_LOADED_TEXT = (
    ":warning: The workflow version of this request is not loaded on this server, so it "
    "can't be answered right now. Nothing was changed."
)


def register_listeners(app: AsyncApp, deps: Deps) -> None:
    """Register the click and modal-submission listeners on ``app``."""

    async def on_action(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient
    ) -> None:
        await ack()  # first, always: the work may take longer than Slack waits
        after_ack(handle_click(deps, client, body, action), "a click")

    async def on_submit(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = str(body["user"]["id"])
        task = asyncio.ensure_future(handle_submission(deps, user, view))
        try:
            response = await asyncio.wait_for(asyncio.shield(task), SUBMIT_BUDGET)
        except TimeoutError:
            task.add_done_callback(_log_late_submission)
            response = notice("Your answer is being recorded; the request message will show it.")
        if response is None:
            await ack()  # an empty 200 closes the modal
        else:
            await ack(response)

    app.action(action_ids.ACTION_ID_PATTERN)(on_action)
    app.view(action_ids.CALLBACK_ID_PATTERN)(on_submit)


# Tasks started by after_ack: asyncio keeps only weak references to running tasks.
_AFTER_ACK: set[asyncio.Task[None]] = set()


def after_ack(work: Coroutine[Any, Any, None], what: str) -> None:
    """Run ``work`` in the background, so the listener returns and its ack is sent now.

    Under ``process_before_response=True`` bolt answers Slack only when the listener
    returns: whatever may be slow after ``ack()`` goes here. A failure is logged.
    """
    task = asyncio.ensure_future(work)
    _AFTER_ACK.add(task)
    task.add_done_callback(partial(_after_ack_done, what))


def _after_ack_done(what: str, task: asyncio.Task[None]) -> None:
    _AFTER_ACK.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed after it was acked", what, exc_info=task.exception())


def _log_late_submission(task: asyncio.Future[dict[str, Any] | None]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("a slow modal submission failed after it was acked", exc_info=exc)


# -- clicks --------------------------------------------------------------------------------


async def handle_click(
    deps: Deps, client: AsyncWebClient, body: Mapping[str, Any], action: Mapping[str, Any]
) -> None:
    """Act on a click on a request message (after the ack): resume, open a modal, or
    tell the clicker (ephemerally) why nothing happened."""
    user = str(body["user"]["id"])

    async def tell(text: str) -> None:
        await _ephemeral(client, body, user, text)

    # A button carries the reference in its value; a select menu in its block_id.
    token = str(action.get("value") or action.get("block_id") or "")
    try:
        ref = deps.signer.verify(token)
    except InvalidReference as exc:
        log.warning("refused a click by %s: %s", user, exc)
        await tell(INVALID_REF_TEXT)
        return
    try:
        interrupt = await deps.engine.get_interrupt(ref.run_id, ref.interrupt_id)
        if interrupt.status is not InterruptStatus.PENDING:
            await tell(already_decided_text(interrupt))
            return
        model = deps.engine.resume_model(interrupt)
        click = parse_action(model=model, action=action)
        await deps.engine.check_authorized(interrupt, user)
        if click.opens_modal:
            await _open_modal(deps, client, body, interrupt, token, click.decision)
            return
        answer = validate_submission(model, click.values, decision=click.decision)
        outcome = await deps.engine.resume(ref.run_id, ref.interrupt_id, _dump(answer), actor=user)
    except (SignoffError, UnknownAction, InvalidSubmission) as exc:
        await tell(await _refusal(deps, exc, ref.run_id, ref.interrupt_id))
        return
    if not outcome.resolved:
        await tell(_progress_receipt(outcome))


async def _open_modal(
    deps: Deps,
    client: AsyncWebClient,
    body: Mapping[str, Any],
    interrupt: Interrupt,
    token: str,
    decision: bool | None,
) -> None:
    info = request_info(deps.engine, interrupt)
    view = render_modal(
        model=info.model,
        ref=token,
        title=info.step,
        decision=decision,
        description=info.description,
    )
    # trigger_id is single-use and expires 3 s after the click: open the modal at once.
    try:
        await client.views_open(trigger_id=body.get("trigger_id"), view=view)
    except SlackApiError as exc:
        log.warning("could not open the response modal: %s", exc)
        await _ephemeral(
            client, body, str(body["user"]["id"]),
            ":warning: Slack did not open the form in time; please click again.",
        )  # fmt: skip


async def _ephemeral(client: AsyncWebClient, body: Mapping[str, Any], user: str, text: str) -> None:
    container = body.get("container") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
    if not channel:
        log.info("no channel to tell %s: %s", user, text)
        return
    try:
        await client.chat_postEphemeral(channel=channel, user=user, text=text)
    except SlackApiError as exc:
        log.warning("could not send an ephemeral message to %s: %s", user, exc)


def _progress_receipt(outcome: ResumeOutcome) -> str:
    return (
        ":white_check_mark: Your approval is recorded: "
        f"{outcome.approvals} of {outcome.needed} approvals so far."
    )


async def _refusal(deps: Deps, exc: Exception, run_id: str, interrupt_id: str) -> str:
    """Words for a click or submission that changed nothing."""
    if isinstance(exc, AlreadyResolved):
        return already_decided_text(exc)
    if isinstance(exc, RunNotFound | InterruptNotFound):
        return GONE_TEXT
    if isinstance(exc, WorkflowNotRegistered):
        return NOT_LOADED_TEXT
    if isinstance(exc, NotAuthorized):
        interrupt = await deps.engine.get_interrupt(run_id, interrupt_id)
        return not_authorized_text(interrupt, exc)
    if isinstance(exc, DuplicateResponse):
        return duplicate_text(exc)
    if isinstance(exc, ResumeValidationError | InvalidSubmission):
        return f":warning: That answer is not valid: {escape_truncate(str(exc), 500)}"
    if isinstance(exc, UnknownAction):
        return ":warning: Signoff does not know this control. Nothing was changed."
    if isinstance(exc, ResumeRejected):
        return f":warning: {escape_truncate(str(exc), 500)}"
    log.error("unexpected error answering %s/%s", run_id, interrupt_id, exc_info=exc)
    return ":warning: Something went wrong; nothing was changed. Please try again."


def _dump(answer: BaseModel) -> dict[str, Any]:
    # By alias: the engine validates the data again with the same model.
    return answer.model_dump(by_alias=True)


# -- modal submissions ---------------------------------------------------------------------


def notice(text: str) -> dict[str, Any]:
    """An ack body replacing the modal with a short message (and no Submit button)."""
    view = View(
        type="modal",
        title="Signoff",
        close="Close",
        blocks=[SectionBlock(text=MarkdownTextObject(text=text))],
    )
    return {"response_action": "update", "view": view.to_dict()}


async def handle_submission(
    deps: Deps, user: str, view: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Validate and record a submitted response modal.

    Returns:
        ``None`` when the answer was recorded (ack empty: the modal closes), an
        ``{"response_action": "errors", ...}`` body mapping each invalid field's block to
        its message, or a notice replacing the modal when the request can't be answered.
    """
    try:
        ref = deps.signer.verify(str(view.get("private_metadata") or ""))
    except InvalidReference as exc:
        log.warning("refused a modal submission by %s: %s", user, exc)
        return notice(INVALID_REF_TEXT)
    try:
        interrupt = await deps.engine.get_interrupt(ref.run_id, ref.interrupt_id)
        if interrupt.status is not InterruptStatus.PENDING:
            return notice(already_decided_text(interrupt))
        model = deps.engine.resume_model(interrupt)
        submission = parse_view_submission(model=model, view=view)
    except (SignoffError, UnknownAction) as exc:
        return notice(await _refusal(deps, exc, ref.run_id, ref.interrupt_id))
    try:
        answer = validate_submission(model, submission.values, decision=submission.decision)
    except InvalidSubmission as exc:
        return {"response_action": "errors", "errors": exc.errors}
    try:
        outcome = await deps.engine.resume(ref.run_id, ref.interrupt_id, _dump(answer), actor=user)
    except ResumeValidationError as exc:
        return {"response_action": "errors", "errors": _errors_by_block(model, submission, exc)}
    except SignoffError as exc:
        return notice(await _refusal(deps, exc, ref.run_id, ref.interrupt_id))
    if not outcome.resolved:
        return notice(_progress_receipt(outcome))
    return None


def _errors_by_block(
    model: type[BaseModel], submission: Submission, exc: ResumeValidationError
) -> dict[str, str]:
    """The engine's ``{"field.path": message}`` keyed by the modal's input block ids."""
    schema = describe_model(model)
    shown = [spec.name for spec in schema.form_fields(decision=submission.decision)]
    by_key = {spec.input_key: spec.name for spec in schema.fields}
    fallback = shown[0] if shown else ""
    errors: dict[str, str] = {}
    for path, message in exc.errors.items():
        name = by_key.get(path.split(".", 1)[0], "")
        block = name if name in shown else fallback
        errors.setdefault(block, message)
    return errors or {fallback: str(exc)}
