"""Thin bolt listeners for clicks on request messages and submitted response modals.

Each one: verify the signed reference, ask the engine, answer the person. The engine
decides everything that matters (is it still pending, may this person answer, is the
answer valid, who won a race); these handlers only translate. Message updates are not
made here but by the notifier, from the outbox, so every path that resolves an interrupt
(Slack, API, expiry, cancel) updates Slack the same way.

The ack means "recorded". Slack never resends an interaction it got a 200 for, so a click
that decides (Approve, Reject, a choice) is resolved *before* the ack: ``engine.resume``
validates, authorizes and commits the answer and its outbox message in one transaction,
and whatever happens to this process after the 200, recovery carries the run on. What the
clicker is told (a refusal, a quorum receipt) and clicks that only open a modal run after
the ack (``after_ack``). To keep the ack in the 2 ms range, the click costs one store round
trip: the interrupt's resume model and posted messages come from ``Bindings``, filled when
the notifier posts, and everything else is checked inside ``resume``.

A click on a message must come from a message the referenced interrupt was posted in
(its refs' channel + ts): a reference copied into another message changes nothing. The
one exception is a copy posted just before a crash, before its ref was recorded: its own
message metadata (which Slack sends with the click) naming the same interrupt binds it.
Clicks from views (a modal, App Home) have no message and are not checked this way.

Timing (Slack's 3 s): the app runs with ``process_before_response=True``, so bolt sends
the HTTP response as soon as a listener returns. Deciding clicks and modal submissions
(which must be answered *with* their validation errors) resume before acking, bounded by
``SUBMIT_BUDGET``: if the engine (or a user-group lookup it needs) is slower, the
interaction is acked anyway and the resume still completes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
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
from bot.slack.bindings import Binding, MessageKey
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
from bot.slack.feedback import Feedback
from bot.slack.recall import EVENT_TYPE
from bot.slack.refs import Ref
from bot.slack.snooze import snooze
from engine import (
    AlreadyResolved,
    DuplicateResponse,
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
    "clicked_message",
    "from_home",
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
WRONG_MESSAGE_TEXT = (
    ":warning: This control does not belong to this message: its reference names another "
    "request. Nothing was changed."
)
NOT_LOADED_TEXT = (
    ":warning: The workflow version of this request is not loaded on this server, so it "
    "can't be answered right now. Nothing was changed."
)


def register_listeners(app: AsyncApp, deps: Deps) -> None:
    """Register the click and modal-submission listeners on ``app``."""

    async def on_action(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient
    ) -> None:
        task = asyncio.ensure_future(handle_click(deps, body, action))
        done = await _finished_within(task, SUBMIT_BUDGET)
        follow_up = task.result() if done else partial(_late_click, task)
        await ack()  # the answer is recorded (or refused) by now
        if follow_up is not None:
            after_ack(follow_up(client), "a click")
        if deps.home is not None and from_home(body):
            deps.home.schedule(str(body["user"]["id"]))  # stale or not, show it as it is now

    async def on_submit(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = str(body["user"]["id"])
        task = asyncio.ensure_future(handle_submission(deps, user, view))
        if await _finished_within(task, SUBMIT_BUDGET):
            response = task.result()
        else:
            task.add_done_callback(_log_late_submission)
            response = notice("Your answer is being recorded; the request message will show it.")
        if response is None:
            await ack()  # an empty 200 closes the modal
        else:
            await ack(response)

    async def on_home_opened(event: dict[str, Any]) -> None:
        # Acked when this returns: the tab is built and published in the background.
        if deps.home is not None and event.get("tab") == "home" and event.get("user"):
            deps.home.opened(str(event["user"]))

    async def on_snooze(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient
    ) -> None:
        # The timer is recorded before the ack, like an answer; the confirmation after.
        text = await snooze(deps.engine, deps.signer, client, body, action)
        await ack()
        user = str(body["user"]["id"])
        after_ack(_ephemeral(client, body, user, text), "a snooze")

    # Bolt tries listeners in the order they were registered, each match costing it an
    # introspected call: the click, the one payload that comes in bursts, is tried first
    # (54 -> 36 us of bolt's dispatch per click, measured with bolt alone). The patterns
    # are disjoint (action_ids), so the order changes nothing else.
    app.action(action_ids.ACTION_ID_PATTERN)(on_action)
    app.action(action_ids.SNOOZE_PATTERN)(on_snooze)
    app.view(action_ids.CALLBACK_ID_PATTERN)(on_submit)
    app.event("app_home_opened")(on_home_opened)


async def _finished_within(task: asyncio.Future[Any], seconds: float) -> bool:
    """Whether ``task`` finished within ``seconds``; it is never cancelled (a click's or
    a submission's answer is committed either way).

    ``asyncio.wait((task,), timeout=seconds)`` without its bookkeeping for many
    awaitables: one wake-up between the commit and the ack, and about 10 us less per
    click. Clicks and modal submissions both wait this way (``wait_for(shield(...))``
    would add wake-ups).
    """
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    task.add_done_callback(wake)
    timer = loop.call_later(seconds, wake)
    try:
        await waiter
    finally:
        timer.cancel()
        task.remove_done_callback(wake)
    return task.done()


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


FollowUp = Callable[[AsyncWebClient], Coroutine[Any, Any, None]]


async def handle_click(
    deps: Deps, body: Mapping[str, Any], action: Mapping[str, Any]
) -> FollowUp | None:
    """Act on a click on a request message, before the ack: resume for a click that
    decides. Returns what to do after the ack (tell the clicker why nothing happened or
    how far a quorum got, or open a modal), or None."""
    user = str(body["user"]["id"])
    # A button carries the reference in its value; a select menu in its block_id.
    token = str(action.get("value") or action.get("block_id") or "")
    try:
        ref = deps.signer.verify(token)
    except InvalidReference as exc:
        log.warning("refused a click by %s: %s", user, exc)
        return _teller(body, INVALID_REF_TEXT)
    clicked = clicked_message(body)
    try:
        binding = await deps.bindings.lookup(ref.run_id, ref.interrupt_id, clicked)
        if clicked is not None and not _bound(binding, clicked, body, ref):
            log.warning("refused a click by %s on %s: not a message of %s/%s",
                        user, clicked, ref.run_id, ref.interrupt_id)  # fmt: skip
            return _teller(body, WRONG_MESSAGE_TEXT)
        click = parse_action(model=binding.model, action=action)
        if click.opens_modal:
            return partial(_open_modal, deps, body, ref, token, click.decision)
        answer = validate_submission(binding.model, click.values, decision=click.decision)
        outcome = await deps.engine.resume(ref.run_id, ref.interrupt_id, _dump(answer), actor=user)
    except (SignoffError, UnknownAction, InvalidSubmission) as exc:
        return partial(_tell_refusal, deps, body, exc, ref)
    if not outcome.resolved:
        return _teller(body, _progress_receipt(outcome))
    if deps.feedback is None:
        return None  # nothing paces the notifier: its chat.update shows the outcome now
    return partial(_show_outcome, deps.feedback, body, ref)


async def _show_outcome(
    feedback: Feedback, body: Mapping[str, Any], ref: Ref, client: AsyncWebClient
) -> None:
    """Show the outcome through ``response_url`` at once, while chat.update is paced."""
    await feedback.show_outcome(body, ref)


def _bound(binding: Binding, clicked: MessageKey, body: Mapping[str, Any], ref: Ref) -> bool:
    """Whether the clicked message shows the interrupt ``ref`` names: one recorded on it,
    or (in the moment after a crash, before the notifier recorded it) a copy whose own
    metadata, as Slack sent it with the click, names that interrupt; or a digest or
    snooze DM whose metadata lists it."""
    if clicked in binding.messages:
        return True
    metadata = (body.get("message") or {}).get("metadata") or {}
    payload = metadata.get("event_payload") or {}
    if metadata.get("event_type") != EVENT_TYPE:
        return False
    if [ref.run_id, ref.interrupt_id] in (payload.get("requests") or []):
        return True  # a digest DM lists several requests, each with its controls
    return payload.get("run_id") == ref.run_id and payload.get("interrupt_id") == ref.interrupt_id


def clicked_message(body: Mapping[str, Any]) -> MessageKey | None:
    """(channel, ts) of the message a click came from; None for a click in a view."""
    container = body.get("container") or {}
    if container.get("type") != "message":
        return None
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
    ts = container.get("message_ts") or (body.get("message") or {}).get("ts")
    return (str(channel or ""), str(ts or ""))


def _teller(body: Mapping[str, Any], text: str) -> FollowUp:
    async def tell(client: AsyncWebClient) -> None:
        await _ephemeral(client, body, str(body["user"]["id"]), text)

    return tell


async def _tell_refusal(
    deps: Deps, body: Mapping[str, Any], exc: Exception, ref: Ref, client: AsyncWebClient
) -> None:
    text = await _refusal(deps, exc, ref.run_id, ref.interrupt_id)
    await _ephemeral(client, body, str(body["user"]["id"]), text)


async def _late_click(task: asyncio.Future[FollowUp | None], client: AsyncWebClient) -> None:
    """The rest of a click that outlasted the budget: it was acked before it resolved."""
    follow_up = await task
    if follow_up is not None:
        await follow_up(client)


async def _open_modal(
    deps: Deps,
    body: Mapping[str, Any],
    ref: Ref,
    token: str,
    decision: bool | None,
    client: AsyncWebClient,
) -> None:
    """After the ack: open the response modal, if the request waits and the clicker may
    answer it (otherwise say why)."""
    user = str(body["user"]["id"])
    try:
        interrupt = await deps.engine.get_interrupt(ref.run_id, ref.interrupt_id)
        if interrupt.status is not InterruptStatus.PENDING:
            await _ephemeral(client, body, user, already_decided_text(interrupt))
            return
        await deps.engine.check_authorized(interrupt, user)
        info = request_info(deps.engine, interrupt)
    except SignoffError as exc:
        await _tell_refusal(deps, body, exc, ref, client)
        return
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
            client, body, user, ":warning: Slack did not open the form in time; please click again."
        )


def from_home(body: Mapping[str, Any]) -> bool:
    """Whether an interaction came from the App Home tab."""
    return str((body.get("view") or {}).get("type") or "") == "home"


async def _ephemeral(client: AsyncWebClient, body: Mapping[str, Any], user: str, text: str) -> None:
    container = body.get("container") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
    if not channel and from_home(body):
        # A Home tab has no channel to whisper in: tell the person in the app's DM.
        try:
            await client.chat_postMessage(channel=user, text=text)
        except SlackApiError as exc:
            log.warning("could not DM %s: %s", user, exc)
        return
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
