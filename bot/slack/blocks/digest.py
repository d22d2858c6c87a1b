"""Render the reminder digest: one DM listing every request waiting for a person.

Pure, no I/O. Each item has the same controls as its request message (and the snooze
buttons), in actions blocks with ids unique in the message; at most ``DIGEST_MAX`` items
(Slack allows 50 blocks in a message), then "and N more".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.slack.blocks.home import WaitingItem, snooze_buttons, waiting_text
from bot.slack.blocks.render import Message, request_controls

__all__ = ["DIGEST_MAX", "render_digest"]

DIGEST_MAX = 15  # two blocks each: 30 of a message's 50


def render_digest(items: Sequence[WaitingItem], total: int, *, now: datetime) -> Message:
    """The digest DM for ``items`` (the first ``DIGEST_MAX`` shown) of ``total`` waiting."""
    title = f"{total} request{'s' if total != 1 else ''} waiting for you"
    blocks: list[Block] = [HeaderBlock(text=f":bell: {title}")]
    for n, item in enumerate(items[:DIGEST_MAX]):
        blocks.append(SectionBlock(text=MarkdownTextObject(text=waiting_text(item, now))))
        controls = request_controls(item.info.model, item.ref, block_id=f"signoff_digest_{n}")
        controls.elements = [*controls.elements, *snooze_buttons(item.ref)]
        blocks.append(controls)
    shown = min(len(items), DIGEST_MAX)
    if total > shown:
        blocks.append(
            ContextBlock(
                elements=[
                    MarkdownTextObject(
                        text=f"…and {total - shown} more on the app's Home tab "
                        "(or `/signoff pending`)."
                    )
                ]
            )
        )
    return Message(text=f"Reminder: {title}", blocks=[block.to_dict() for block in blocks])
