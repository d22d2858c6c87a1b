"""The slash command (``/signoff`` by default): start, pending, status, cancel, list, help.

Every reply is ephemeral (only the person who typed the command sees it). The reply is
worked out within ``COMMAND_BUDGET`` seconds and sent as the ack itself; if the engine is
slower than that, the command is acked with "working on it" and the reply follows through
the command's ``response_url``, so Slack's 3-second limit always holds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.slack.blocks.compose import cancellation, finished_text
from bot.slack.blocks.home import WAITING_MAX
from bot.slack.blocks.responders import describe_responders
from bot.slack.blocks.text import escape, escape_truncate, humanize, mention, slack_date, truncate
from bot.slack.deps import Deps
from bot.slack.digest import DIGEST_PREFERENCE, MODES
from bot.slack.home import console_inbox_url, load_inbox
from bot.slack.listeners import after_ack
from bot.slack.notifier import posted_messages
from engine import (
    Interrupt,
    InterruptKind,
    InvalidInput,
    RunNotActive,
    RunNotFound,
    Workflow,
    WorkflowNotRegistered,
)

__all__ = ["COMMAND_BUDGET", "parse_input", "register_commands", "run_command"]

log = logging.getLogger("signoff.bot.commands")

COMMAND_BUDGET = 2.0  # seconds before the ack must go out without the answer
REPLY_MAX = 3900  # Slack shows about 4,000 characters of a message before "show more"
LIST_MAX = 15
# Slack rewrites mentions in command text when "escape channels, users, and links" is on.
_SLACK_ESCAPE = re.compile(r"<[@#!]?([^|>]+)(?:\|[^>]*)?>")
_SMART_QUOTES = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'"})
_KEY = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*)=")
_JSON = json.JSONDecoder()

Subcommand = Callable[[Deps, str, str], Awaitable[str]]


def register_commands(app: AsyncApp, deps: Deps) -> None:
    """Register the slash command named in ``settings.slash_command`` on ``app``."""

    async def on_command(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        text, user = str(command.get("text") or ""), str(command["user_id"])
        task = asyncio.ensure_future(run_command(deps, text, user))
        try:
            reply = await asyncio.wait_for(asyncio.shield(task), COMMAND_BUDGET)
        except TimeoutError:
            await ack(":hourglass_flowing_sand: Working on it…")
            after_ack(_reply_later(respond, task), "a slow slash command")
            return
        await ack(reply)

    app.command(deps.settings.slash_command)(on_command)


async def _reply_later(respond: AsyncRespond, reply: Awaitable[str]) -> None:
    await respond(text=await reply, response_type="ephemeral")


async def run_command(deps: Deps, text: str, user: str) -> str:
    """The (mrkdwn) reply to ``<command> <text>`` typed by ``user``."""
    words = text.strip().split(maxsplit=1)
    name = words[0].lower() if words else "help"
    rest = words[1] if len(words) > 1 else ""
    handler = _SUBCOMMANDS.get(name)
    if handler is None:
        unknown = f":thinking_face: I don't know `{escape_truncate(name, 50)}`.\n\n"
        return unknown + _help_text(deps)
    try:
        reply = await handler(deps, rest, user)
    except Exception:
        log.exception("%s %s failed", deps.settings.slash_command, name)
        reply = ":warning: Something went wrong on Signoff's side; nothing was changed."
    return truncate(reply, REPLY_MAX)


# -- start ---------------------------------------------------------------------------------


def parse_input(text: str) -> dict[str, Any]:
    """Read a workflow input from ``{"json": ...}`` or ``key=value`` pairs.

    Values stay strings for pydantic to convert (``replicas=3`` becomes an int if the field
    is one, while ``version=1.10`` stays "1.10"); a value starting with ``[`` or ``{`` is
    JSON. Quote a value with spaces: ``note="ship it"``. Slack's escaping of command text
    is undone first: mentions (``<@U123|ann>``) become their ids, ``&lt;`` becomes ``<``.

    Raises:
        ValueError: for unreadable JSON, a word without ``=``, or a repeated key.
    """
    text = _unescape(text).strip().translate(_SMART_QUOTES)
    if not text:
        return {}
    if text.startswith("{"):
        try:
            decoded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"the JSON is not valid ({exc.msg} at character {exc.pos})") from None
        if not isinstance(decoded, dict):
            raise ValueError("the JSON must be an object")
        return {str(key): value for key, value in decoded.items()}
    data: dict[str, Any] = {}
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return data
        match = _KEY.match(text, pos)
        if match is None:
            raise ValueError(f"`{text[pos:].split()[0]}` is not `key=value`")
        key = match.group(1)
        if key in data:
            raise ValueError(f"`{key}` is given twice")
        data[key], pos = _value(text, match.end(), key)


def _value(text: str, pos: int, key: str) -> tuple[Any, int]:
    """One value starting at ``pos``: JSON, a quoted string, or a word; and where it ends."""
    first = text[pos : pos + 1]
    if first in ("[", "{"):
        try:
            value, end = _JSON.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise ValueError(f"`{key}` is not valid JSON ({exc.msg})") from None
    elif first in ('"', "'"):
        close = text.find(first, pos + 1)
        if close < 0:
            raise ValueError(f"`{key}` has an unclosed quote (check the quotes)")
        value, end = text[pos + 1 : close], close + 1
    else:
        end = pos
        while end < len(text) and not text[end].isspace():
            end += 1
        value = text[pos:end]
    if end < len(text) and not text[end].isspace():
        raise ValueError(f"`{key}` needs a space after its value")
    return value, end


def _unescape(text: str) -> str:
    text = _SLACK_ESCAPE.sub(r"\1", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


async def _start(deps: Deps, rest: str, user: str) -> str:
    name, _, args = rest.strip().partition(" ")
    usage = f"Usage: `{deps.settings.slash_command} start <workflow> key=value …`"
    if not name:
        return f"{usage}\n\n{_workflow_list(deps)}"
    try:
        workflow = deps.engine.registry.get(name)
    except WorkflowNotRegistered:
        return _no_workflow(deps, name)
    try:
        data = parse_input(args)
    except ValueError as exc:
        return f":warning: I couldn't read the input: {escape(str(exc))}\n{usage}"
    try:
        run_id = await deps.engine.start(name, data, requester=user)
    except InvalidInput as exc:
        problems = "\n".join(
            f"• `{escape(field or '(input)')}`: {escape(message)}"
            for field, message in exc.errors.items()
        )
        return (
            f":warning: The input is not valid for `{escape(name)}`; nothing was started.\n"
            f"{problems}\n{_fields_line(workflow)}"
        )
    return (
        f":rocket: Started *{escape(_title(workflow))}*: run `{run_id}`. "
        f"Check on it with `{deps.settings.slash_command} status {run_id}`."
    )


# -- pending / status / cancel / list ------------------------------------------------------


async def _pending(deps: Deps, rest: str, user: str) -> str:
    # The same list as the Home tab (load_inbox), capped to what fits in one reply.
    inbox = await load_inbox(deps.engine, user, limit=LIST_MAX)
    if not inbox.waiting:
        return ":tada: Nothing is waiting for you."
    lines = [f"*{inbox.total} request(s) waiting for you:*"]
    lines += [_interrupt_line(deps, i) for i in inbox.waiting]
    if inbox.total > len(inbox.waiting):
        lines.append(_more_line(deps, inbox.total - len(inbox.waiting), inbox.total))
    return "\n".join(lines)


def _more_line(deps: Deps, more: int, total: int) -> str:
    """Where the requests ``/signoff pending`` does not list are (``total`` in all)."""
    if total <= WAITING_MAX:
        return f"…and {more} more, all on the app's Home tab."
    text = f"…and {more} more: the oldest {WAITING_MAX} are on the app's Home tab"
    url = console_inbox_url(deps.settings)
    if url:
        return f"{text}, and more of them in <{url}|the console>."
    return f"{text}; the rest move up as those are answered."


async def _status(deps: Deps, rest: str, user: str) -> str:
    run_id = rest.strip().split(" ")[0]
    if not run_id:
        return f"Usage: `{deps.settings.slash_command} status <run-id>`"
    try:
        detail = await deps.engine.get_run(run_id)
    except RunNotFound:
        return f":thinking_face: There is no run `{escape_truncate(run_id, 100)}`."
    run = detail.run
    who = f" · requested by {mention(run.requester)}" if run.requester else ""
    lines = [
        f"*Run `{run.id}`* · `{escape(run.workflow)}` v{escape(run.version)} "
        f"· *{run.status.value}*",
        f"Started {slack_date(run.created_at)}{who}",
    ]
    waiting = [i for i in detail.pending if _asks(i)]
    if waiting:
        lines.append("Waiting for:")
        lines += [_interrupt_line(deps, i) for i in waiting[:LIST_MAX]]
    if run.status.terminal:
        lines.append(finished_text(run, cancellation(detail)))
    return "\n".join(lines)


async def _cancel(deps: Deps, rest: str, user: str) -> str:
    run_id, _, reason = rest.strip().partition(" ")
    if not run_id:
        return f"Usage: `{deps.settings.slash_command} cancel <run-id> [reason]`"
    try:
        detail = await deps.engine.get_run(run_id)
    except RunNotFound:
        return f":thinking_face: There is no run `{escape_truncate(run_id, 100)}`."
    requester = detail.run.requester
    if user != requester and user not in deps.settings.admins:
        owner = mention(requester) if requester else "nobody (it was started by the system)"
        return (
            ":no_entry: Only the run's requester or a Signoff admin can cancel it. "
            f"Its requester is {owner}."
        )
    try:
        await deps.engine.cancel(run_id, reason=reason.strip(), actor=user)
    except RunNotActive as exc:
        return f":information_source: Run `{run_id}` already finished: it is {exc.status}."
    why = f": {escape_truncate(reason.strip(), 300)}" if reason.strip() else "."
    return f":no_entry_sign: Cancelled run `{run_id}`{why}"


async def _list(deps: Deps, rest: str, user: str) -> str:
    name = rest.strip()
    lines = []
    if name:
        try:
            deps.engine.registry.get(name)
        except WorkflowNotRegistered:
            return _no_workflow(deps, name)
    else:
        lines.append(_workflow_list(deps))
    runs = await deps.engine.list_runs(workflow=name or None, limit=LIST_MAX)
    where = f" of `{escape(name)}`" if name else ""
    lines.append(f"*Recent runs{where}:*" if runs else f"No runs{where} yet.")
    for run in runs:
        by = f" · {mention(run.requester)}" if run.requester else ""
        lines.append(
            f"• `{run.id}` · `{escape(run.workflow)}` · *{run.status.value}* · "
            f"{slack_date(run.created_at)}{by}"
        )
    return "\n".join(lines)


async def _help(deps: Deps, rest: str = "", user: str = "") -> str:
    return _help_text(deps)


def _help_text(deps: Deps) -> str:
    c = deps.settings.slash_command
    return "\n".join(
        [
            f"*Signoff* · `{c} <subcommand>`",
            f"• `{c} start <workflow> key=value …` (or a JSON object): start a run; "
            "you are its requester",
            f"• `{c} pending`: requests waiting for your answer",
            f"• `{c} status <run-id>`: where a run is",
            f"• `{c} cancel <run-id> [reason]`: cancel a run (its requester or an admin)",
            f"• `{c} list [workflow]`: workflows you can start, and recent runs",
            f"• `{c} digest on|off|auto`: reminders as one DM listing all your requests",
            f"• `{c} help`: this message",
        ]
    )


async def _digest(deps: Deps, rest: str, user: str) -> str:
    mode = rest.strip().lower()
    if mode not in MODES:
        current = await deps.engine.get_preference(user, DIGEST_PREFERENCE) or "auto"
        return (
            f"Your reminder digest is *{current}*. `{deps.settings.slash_command} digest "
            "on|off|auto`: with *on*, due reminders come as one DM listing everything "
            "waiting for you; *off*, one reminder per request; *auto* (the default), a "
            "digest when more than one request waits for you."
        )
    await deps.engine.set_preference(user, DIGEST_PREFERENCE, None if mode == "auto" else mode)
    return f":white_check_mark: Reminder digest: *{mode}*."


_SUBCOMMANDS: dict[str, Subcommand] = {
    "start": _start,
    "pending": _pending,
    "status": _status,
    "cancel": _cancel,
    "list": _list,
    "digest": _digest,
    "help": _help,
}


# -- helpers -------------------------------------------------------------------------------


def _asks(interrupt: Interrupt) -> bool:
    return interrupt.kind is InterruptKind.INPUT


def _title(workflow: Workflow) -> str:
    return workflow.title or humanize(workflow.name)


def _interrupt_line(deps: Deps, i: Interrupt) -> str:
    try:
        wf_title = _title(deps.engine.registry.get(i.workflow, i.version))
    except WorkflowNotRegistered:
        wf_title = i.workflow
    where = ""
    posted = posted_messages(i)
    if posted:
        channel = posted[0].channel
        where = " · in your DMs" if channel.startswith("D") else f" · in <#{channel}>"
    votes = f" · {i.approvals} of {i.quorum} approvals" if i.quorum > 1 else ""
    expires = f" · expires {slack_date(i.expires_at)}" if i.expires_at else ""
    return (
        f"• *{escape(wf_title)}: {escape(i.title or i.step)}* · run `{i.run_id}`{where}{votes}"
        f"{expires} · may respond: {describe_responders(i.responders)}"
    )


def _no_workflow(deps: Deps, name: str) -> str:
    return f":thinking_face: There is no workflow `{escape(name)}`.\n\n{_workflow_list(deps)}"


def _workflow_list(deps: Deps) -> str:
    latest: dict[str, Workflow] = {}
    for wf in deps.engine.registry.all():
        latest[wf.name] = wf  # registration order: the last one is the newest
    if not latest:
        return "No workflows are loaded (set `SIGNOFF_WORKFLOWS`)."
    lines = ["*Workflows you can start:*"]
    for wf in latest.values():
        lines.append(f"• `{escape(wf.name)}` v{escape(str(wf.version))}: {_fields_line(wf)}")
    return "\n".join(lines)


def _fields_line(workflow: Workflow) -> str:
    model = workflow.input
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return "input: a JSON value"
    fields = [
        f"`{escape(name)}`" + ("" if info.is_required() else " (optional)")
        for name, info in model.model_fields.items()
    ]
    return "input: " + (", ".join(fields) if fields else "none")
