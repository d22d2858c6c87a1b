"""Render the App Home tab: what waits for the person, what they asked, what was decided.

Pure functions, no I/O. Each waiting request gets the same controls as its channel message
(same signed reference, same action ids), so a click on the Home tab takes exactly the
path of a click on the message. The view stays inside Slack's 100 blocks: waiting
requests beyond ``WAITING_MAX`` are summarised as "and N more".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from slack_sdk.models.blocks import (
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.slack import action_ids
from bot.slack.blocks.compose import RequestInfo
from bot.slack.blocks.render import request_controls
from bot.slack.blocks.responders import describe_responders
from bot.slack.blocks.text import escape_truncate, mention, slack_date
from engine import Interrupt, InterruptStatus, Run

__all__ = [
    "HOME_BLOCKS_MAX",
    "HOME_CALLBACK_ID",
    "LIST_MAX",
    "WAITING_MAX",
    "DecidedItem",
    "WaitingItem",
    "render_home",
    "snooze_buttons",
    "waiting_text",
]

HOME_BLOCKS_MAX = 100  # Slack's limit for a Home tab
HOME_CALLBACK_ID = "signoff_home"
WAITING_MAX = 40  # two blocks each: 80 of the 100, the rest for headers and lists
LIST_MAX = 10  # lines in "Your requests" and "Recently decided"
LINE_MAX = 280
SECTION_TEXT_MAX = 3000
_STATUS_EMOJI = {
    InterruptStatus.APPROVED: ":white_check_mark: approved",
    InterruptStatus.REJECTED: ":x: rejected",
    InterruptStatus.RESOLVED: ":ballot_box_with_check: answered",
    InterruptStatus.EXPIRED: ":hourglass: expired",
    InterruptStatus.CANCELLED: ":no_entry_sign: cancelled",
}


@dataclass(frozen=True, slots=True)
class WaitingItem:
    """A request the person may answer now, with what its Home entry links to."""

    info: RequestInfo
    ref: str  # the signed reference its controls carry
    message_url: str | None = None
    console_url: str | None = None


@dataclass(frozen=True, slots=True)
class DecidedItem:
    """A decided request the person could have answered."""

    interrupt: Interrupt
    title: str
    console_url: str | None = None


def render_home(
    *,
    waiting: Sequence[WaitingItem],
    waiting_total: int,
    own: Sequence[Run],
    decided: Sequence[DecidedItem],
    now: datetime,
    run_url: dict[str, str] | None = None,
    inbox_url: str | None = None,
) -> View:
    """The Home tab for one person.

    Args:
        waiting: requests they may answer now, in order (only the first ``WAITING_MAX``
            are shown, each with its controls).
        waiting_total: how many there are in all (for "and N more").
        own: their own recent runs, newest first.
        decided: requests they could have answered that were decided, newest first.
        now: the time "time left" is counted from.
        run_url: console links of runs by id (when ``SIGNOFF_PUBLIC_URL`` is set).
        inbox_url: the console's inbox (likewise), linked when not all requests fit.
    """
    blocks: list[Block] = [HeaderBlock(text=f"Waiting for you ({waiting_total})")]
    shown = list(waiting[:WAITING_MAX])
    if not shown:
        blocks.append(_note(":tada: Nothing is waiting for you."))
    for n, item in enumerate(shown):
        blocks.append(SectionBlock(text=MarkdownTextObject(text=waiting_text(item, now))))
        controls = request_controls(item.info.model, item.ref, block_id=f"signoff_home_{n}")
        controls.elements = [*controls.elements, *snooze_buttons(item.ref)]
        blocks.append(controls)
    if waiting_total > len(shown):
        # /signoff pending lists fewer than this tab: only the console lists more.
        more = waiting_total - len(shown)
        text = f"…and {more} more, oldest first: each moves up here as one above is answered."
        if inbox_url:
            text += f" <{inbox_url}|The console> lists more of them."
        blocks.append(_note(text))
    blocks += [DividerBlock(), HeaderBlock(text="Your requests")]
    lines = [_own_line(run, (run_url or {}).get(run.id)) for run in own[:LIST_MAX]]
    blocks.append(_lines(lines, "You have not asked for anything yet."))
    blocks += [DividerBlock(), HeaderBlock(text="Recently decided")]
    blocks.append(_lines([_decided_line(d) for d in decided[:LIST_MAX]], "Nothing yet."))
    assert len(blocks) <= HOME_BLOCKS_MAX  # WAITING_MAX is chosen so
    return View(type="home", callback_id=HOME_CALLBACK_ID, blocks=blocks)


def snooze_buttons(ref: str) -> list[ButtonElement]:
    """ "Remind me in 1h" and "Remind me tomorrow", carrying the request's reference."""
    return [
        ButtonElement(text="Remind me in 1h", action_id=action_ids.SNOOZE_HOUR, value=ref),
        ButtonElement(text="Remind me tomorrow", action_id=action_ids.SNOOZE_TOMORROW, value=ref),
    ]


def waiting_text(item: WaitingItem, now: datetime) -> str:
    """One waiting request: titles, run, requester, quorum progress, time left, links."""
    i = item.info.interrupt
    parts = [
        f"*{escape_truncate(item.info.workflow, 100)}: {escape_truncate(item.info.step, 100)}*"
    ]
    facts = [f"run `{escape_truncate(i.run_id, 40)}`"]
    if i.requester:
        facts.append(f"asked by {mention(i.requester)}")
    if i.quorum > 1:
        facts.append(f"{i.approvals} of {i.quorum} approvals")
    if i.expires_at is not None:
        facts.append(f"{_time_left(i.expires_at, now)} left (expires {slack_date(i.expires_at)})")
    facts.append(f"may respond: {describe_responders(i.responders)}")
    parts.append(" · ".join(facts))
    links = []
    if item.message_url:
        links.append(f"<{item.message_url}|message>")
    if item.console_url:
        links.append(f"<{item.console_url}|console>")
    if links:
        parts.append(" · ".join(links))
    return "\n".join(parts)[:SECTION_TEXT_MAX]


def _time_left(expires_at: datetime, now: datetime) -> str:
    seconds = max(0, int((expires_at - now).total_seconds()))
    if seconds >= 86400:
        return f"{seconds // 86400}d {seconds % 86400 // 3600}h"
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 60}m"


def _own_line(run: Run, url: str | None) -> str:
    name = f"<{url}|`{escape_truncate(run.id, 40)}`>" if url else f"`{escape_truncate(run.id, 40)}`"
    return (
        f"• {escape_truncate(run.workflow, 80)} {name} · *{run.status.value}* · "
        f"{slack_date(run.created_at)}"
    )


def _decided_line(item: DecidedItem) -> str:
    i = item.interrupt
    status = _STATUS_EMOJI.get(i.status, i.status.value)
    who = f" by {mention(i.resolved_by)}" if i.resolved_by and i.resolved_by != "system" else ""
    when = f" {slack_date(i.resolved_at)}" if i.resolved_at else ""
    title = escape_truncate(item.title, 120)
    if item.console_url:
        title = f"<{item.console_url}|{title}>"
    return f"• {title} · {status}{who}{when}"


def _lines(lines: list[str], empty: str) -> Block:
    text = "\n".join(line[:LINE_MAX] for line in lines) or empty
    return SectionBlock(text=MarkdownTextObject(text=text[:SECTION_TEXT_MAX]))


def _note(text: str) -> Block:
    return ContextBlock(elements=[MarkdownTextObject(text=text)])
