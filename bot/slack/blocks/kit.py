"""Block Kit JSON as plain dicts, for the messages posted on every request and answer.

slack-sdk's ``slack_sdk.models`` objects validate themselves in ``to_dict()``, on every
message, and building and serialising them was a third of the cost of posting a message
(issue 11). These builders return the very dicts ``to_dict()`` would (same keys, same
``emoji: true`` on plain text), without the per-message validation: the renderers keep
Slack's limits themselves, and the tests pass their output through slack-sdk's models
(``tests/fakes/blockkit.py``) and compare it with the models' own ``to_dict()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "JsonBlock",
    "actions",
    "button",
    "context",
    "header",
    "mrkdwn",
    "option",
    "plain",
    "section",
    "static_select",
]

JsonBlock = dict[str, Any]


def mrkdwn(text: str) -> dict[str, Any]:
    """A ``mrkdwn`` text object."""
    return {"type": "mrkdwn", "text": text}


def plain(text: str) -> dict[str, Any]:
    """A ``plain_text`` text object (with ``emoji``, as slack-sdk's ``PlainTextObject``)."""
    return {"type": "plain_text", "text": text, "emoji": True}


def header(text: str) -> JsonBlock:
    """A header block showing ``text`` (plain text, at most 150 characters)."""
    return {"type": "header", "text": plain(text)}


def section(
    text: str | None = None, *, fields: Sequence[str] | None = None, block_id: str | None = None
) -> JsonBlock:
    """A section block with mrkdwn ``text`` and/or mrkdwn ``fields``."""
    block: JsonBlock = {"type": "section"}
    if text is not None:
        block["text"] = mrkdwn(text)
    if fields is not None:
        block["fields"] = [mrkdwn(field) for field in fields]
    if block_id is not None:
        block["block_id"] = block_id
    return block


def context(*texts: str) -> JsonBlock:
    """A context block of mrkdwn ``texts``."""
    return {"type": "context", "elements": [mrkdwn(text) for text in texts]}


def actions(elements: list[dict[str, Any]], *, block_id: str | None = None) -> JsonBlock:
    """An actions block holding ``elements``."""
    block: JsonBlock = {"type": "actions", "elements": elements}
    if block_id is not None:
        block["block_id"] = block_id
    return block


def button(text: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    """A button element (``style``: ``primary``, ``danger`` or none)."""
    element: dict[str, Any] = {
        "type": "button",
        "text": plain(text),
        "action_id": action_id,
        "value": value,
    }
    if style is not None:
        element["style"] = style
    return element


def option(text: str, value: str) -> dict[str, Any]:
    """One option of a select menu."""
    return {"text": plain(text), "value": value}


def static_select(
    action_id: str, placeholder: str, options: list[dict[str, Any]]
) -> dict[str, Any]:
    """A ``static_select`` menu of ``options``."""
    return {
        "type": "static_select",
        "action_id": action_id,
        "placeholder": plain(placeholder),
        "options": options,
    }
