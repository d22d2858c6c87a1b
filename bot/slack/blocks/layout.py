"""Lay labelled values out as section blocks that always fit Slack's limits.

Short values share sections as two-column ``fields`` (at most 10 per section); long ones get a
section of their own. A budget of blocks and characters bounds the whole payload so a request
message stays far below 50 blocks and Slack's total-size limit, and whatever does not fit is
summarised as "…and N more fields not shown".
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from bot.slack.blocks import kit
from bot.slack.blocks.text import escape_truncate, humanize, truncate

__all__ = ["LONG_VALUE_MAX", "SHORT_VALUE_MAX", "Item", "layout_items", "payload_items"]

LABEL_MAX = 100
SHORT_VALUE_MAX = 200  # escaped characters; longer values get a section of their own
LONG_VALUE_MAX = 1500
FIELDS_PER_SECTION = 10
FIELD_TEXT_MAX = 2000
SECTION_TEXT_MAX = 3000
MAX_BLOCKS = 30
MAX_CHARS = 8000
EMPTY = "—"


@dataclass(frozen=True, slots=True)
class Item:
    """One labelled value to show.

    Give either ``text`` (plain text, escaped and cut here) or ``mrkdwn`` (already formatted,
    e.g. mentions or dates, and already within ``LONG_VALUE_MAX``).
    """

    label: str
    text: str | None = None
    mrkdwn: str | None = None

    def rendered(self) -> str:
        """The value as mrkdwn, cut to ``LONG_VALUE_MAX``."""
        if self.mrkdwn is not None:
            return truncate(self.mrkdwn, LONG_VALUE_MAX) or EMPTY
        return escape_truncate(self.text or EMPTY, LONG_VALUE_MAX)


def payload_items(payload: BaseModel | Mapping[str, Any] | Any) -> list[Item]:
    """Turn a payload (model instance, mapping, or any value) into labelled plain-text items."""
    if payload is None:
        return []
    # Field names, not aliases, so model fields can be matched to their titles.
    data = to_jsonable_python(payload, fallback=str, by_alias=False)
    if isinstance(payload, BaseModel) and isinstance(data, dict):
        fields = type(payload).model_fields
        return [
            Item(label=_model_label(fields, key), text=plain_text(value))
            for key, value in data.items()
        ]
    if isinstance(data, dict):
        return [
            Item(label=humanize(str(key)), text=plain_text(value)) for key, value in data.items()
        ]
    return [Item(label="Details", text=plain_text(data))]


def plain_text(value: Any) -> str:
    """A readable one-value rendering: Yes/No, comma lists, compact JSON for nested data."""
    if value is None or value == "":
        return EMPTY
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list) and all(_is_scalar(item) for item in value):
        return ", ".join(plain_text(item) for item in value) or EMPTY
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    return str(value)  # Decimal, URL, UUID, ...: their own text is what people expect


def layout_items(
    items: Sequence[Item], *, max_blocks: int = MAX_BLOCKS, max_chars: int = MAX_CHARS
) -> list[kit.JsonBlock]:
    """Lay ``items`` out in order as section blocks, within ``max_blocks`` and ``max_chars``.

    One block of the budget is kept for the "not shown" note.
    """
    blocks: list[kit.JsonBlock] = []
    fields: list[str] = []
    used_chars = 0
    for index, item in enumerate(items):
        label = escape_truncate(item.label, LABEL_MAX) or EMPTY
        value = item.rendered()
        is_long = len(value) > SHORT_VALUE_MAX
        text = f"*{label}*\n{value}"
        opens_block = is_long or not fields or len(fields) == FIELDS_PER_SECTION
        blocks_after = len(blocks) + (1 if fields else 0) + (1 if opens_block else 0)
        if blocks_after > max_blocks - 1 or used_chars + len(text) > max_chars:
            _flush(blocks, fields)
            blocks.append(_not_shown(len(items) - index))
            return blocks
        used_chars += len(text)
        if is_long:
            _flush(blocks, fields)
            blocks.append(kit.section(truncate(text, SECTION_TEXT_MAX)))
            continue
        if len(fields) == FIELDS_PER_SECTION:
            _flush(blocks, fields)
        fields.append(truncate(text, FIELD_TEXT_MAX))
    _flush(blocks, fields)
    return blocks


def _flush(blocks: list[kit.JsonBlock], fields: list[str]) -> None:
    if fields:
        blocks.append(kit.section(fields=fields))
        fields.clear()


def _not_shown(count: int) -> kit.JsonBlock:
    noun = "field" if count == 1 else "fields"
    return kit.context(f"…and {count} more {noun} not shown.")


def _model_label(fields: Mapping[str, Any], key: str) -> str:
    info = fields.get(key)
    title = getattr(info, "title", None)
    return title if isinstance(title, str) and title else humanize(key)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)
