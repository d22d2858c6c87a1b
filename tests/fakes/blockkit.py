"""Check Block Kit JSON the way Slack's API does, as closely as a fake can.

Two layers: every block goes through slack-sdk's own models (``Block.parse`` then
``to_dict()``, which runs their validators, and a comparison that flags keys the models do
not know), then the limits slack-sdk leaves to the server: 50 blocks per message / 100 per
modal or Home tab, 10 options for checkboxes and radio buttons, option text/value lengths,
section field length, plain_text_input lengths, unique ids, required plain_text, non-empty
text, initial options that must be among the options, a modal's submit button when it has
inputs, and no title/submit/close on a Home tab.

Errors read like Slack's ``response_metadata.messages``:
``[ERROR] <what> [json-pointer:/blocks/0/text]``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

__all__ = [
    "HOME_BLOCKS_MAX",
    "MESSAGE_BLOCKS_MAX",
    "MODAL_BLOCKS_MAX",
    "assert_valid_message",
    "assert_valid_view",
    "check_blocks",
    "check_home_view",
    "check_message",
    "check_view",
]

MESSAGE_BLOCKS_MAX = 50
MODAL_BLOCKS_MAX = 100
HOME_BLOCKS_MAX = MODAL_BLOCKS_MAX  # a Home tab has the same limit as a modal
SECTION_FIELD_MAX = 2000
INLINE_OPTIONS_MAX = 10  # checkboxes, radio_buttons
OPTION_TEXT_MAX = 75
OPTION_VALUE_MAX = 150
TEXT_INPUT_LENGTH_MAX = 3000
VIEW_JSON_MAX = 250_000
MODAL_TITLE_MAX = 24

_TEXT_TYPES = {"plain_text", "mrkdwn"}
_PLAIN_ONLY = {"label", "hint", "placeholder", "title", "submit", "close"}
_SELECTS = {"static_select", "multi_static_select"}
_INLINE_CHOICES = {"checkboxes", "radio_buttons"}


def check_message(blocks: Any, *, text: Any = None) -> list[str]:
    """Errors Slack would report for a message's ``blocks`` (empty when valid)."""
    del text  # the fallback text has no structural rules beyond its length (checked by the API)
    return check_blocks(blocks, surface="message")


def check_view(view: Any) -> list[str]:
    """Errors Slack would report for a modal ``view`` passed to views.open/push/update."""
    return _view_errors(view, "modal")


def check_home_view(view: Any) -> list[str]:
    """Errors Slack would report for a Home tab ``view`` passed to views.publish.

    A home view has the modal's block limit (100), ``private_metadata`` and ``callback_id``
    limits, but no ``title``, ``submit`` or ``close``: Slack draws the tab's header itself.
    """
    return _view_errors(view, "home")


def _view_errors(view: Any, kind: str) -> list[str]:
    if not isinstance(view, dict):
        return [_err("view must be an object", "/view")]
    errors: list[str] = []
    if view.get("type") != kind:
        errors.append(_err(f'type must be "{kind}"', "/view/type"))
    for key in ("title", "submit", "close"):
        if key in view and kind == "home":
            errors.append(_err(f"{key} is not allowed in a home view", f"/view/{key}"))
        elif key in view:
            errors.extend(_text_object_errors(view[key], f"/view/{key}", plain_only=True))
    blocks = view.get("blocks")
    if kind == "modal":
        if "title" not in view:
            errors.append(_err("title is required", "/view/title"))
        has_input = isinstance(blocks, list) and any(
            isinstance(b, dict) and b.get("type") == "input" for b in blocks
        )
        if has_input and "submit" not in view:
            errors.append(_err("must define submit to use input block", "/view/blocks"))
    if len(json.dumps(view)) > VIEW_JSON_MAX:
        errors.append(_err("view_too_large", "/view"))
    try:
        _compare(view, View(**view).to_dict(), "/view", errors)
    except Exception as exc:  # the models raise several types; all mean "rejected"
        errors.append(_err(str(exc), "/view"))
    errors.extend(check_blocks(blocks, surface=kind, pointer="/view/blocks"))
    return errors


def check_blocks(blocks: Any, *, surface: str, pointer: str = "/blocks") -> list[str]:
    """Errors for a list of blocks on ``surface`` (``"message"``, ``"modal"`` or ``"home"``)."""
    if not isinstance(blocks, list):
        return [_err("blocks must be an array", pointer)]
    limit = MESSAGE_BLOCKS_MAX if surface == "message" else MODAL_BLOCKS_MAX
    errors: list[str] = []
    if surface != "message" and not blocks:
        errors.append(_err("must contain at least 1 block", pointer))
    if len(blocks) > limit:
        errors.append(_err(f"no more than {limit} items allowed", pointer))
    block_ids: set[str] = set()
    for index, block in enumerate(blocks):
        where = f"{pointer}/{index}"
        if not isinstance(block, dict):
            errors.append(_err("block must be an object", where))
            continue
        errors.extend(_sdk_errors(block, where))
        errors.extend(_limit_errors(block, where))
        block_id = block.get("block_id")
        if isinstance(block_id, str):
            if block_id in block_ids:
                errors.append(_err(f"duplicate block_id {block_id!r}", f"{where}/block_id"))
            block_ids.add(block_id)
    return list(dict.fromkeys(errors))  # one message per problem, as Slack reports them


def assert_valid_message(blocks: Any) -> None:
    """Fail with Slack-style messages if ``blocks`` would be rejected in a message."""
    errors = check_message(blocks)
    assert not errors, "\n".join(errors)


def assert_valid_view(view: Any) -> None:
    """Fail with Slack-style messages if ``view`` would be rejected as a modal."""
    errors = check_view(view)
    assert not errors, "\n".join(errors)


def _err(message: str, pointer: str) -> str:
    return f"[ERROR] {message} [json-pointer:{pointer}]"


def _sdk_errors(block: dict[str, Any], where: str) -> list[str]:
    try:
        parsed = Block.parse(dict(block))
        if parsed is None:
            return [_err(f"unsupported block type {block.get('type')!r}", where)]
        rendered = parsed.to_dict()
    except Exception as exc:  # TypeError for missing args, SlackObjectFormationError, ...
        return [_err(str(exc), where)]
    errors: list[str] = []
    _compare(block, rendered, where, errors)
    return errors


def _compare(sent: Any, known: Any, where: str, errors: list[str]) -> None:
    """Flag anything in ``sent`` that the slack-sdk models dropped: unknown keys or elements."""
    if isinstance(sent, dict):
        if not isinstance(known, dict):
            errors.append(_err("unsupported or malformed object", where))
            return
        for key, value in sent.items():
            if key not in known:
                errors.append(_err(f"unsupported or empty property {key!r}", f"{where}/{key}"))
            else:
                _compare(value, known[key], f"{where}/{key}", errors)
    elif isinstance(sent, list):
        if not isinstance(known, list) or len(known) != len(sent):
            errors.append(_err("unsupported items in array", where))
            return
        for index, (a, b) in enumerate(zip(sent, known, strict=True)):
            _compare(a, b, f"{where}/{index}", errors)


def _walk(node: Any, where: str, parent_key: str = "") -> Iterator[tuple[dict[str, Any], str, str]]:
    if isinstance(node, dict):
        yield node, where, parent_key
        for key, value in node.items():
            yield from _walk(value, f"{where}/{key}", key)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{where}/{index}", parent_key)


def _limit_errors(block: dict[str, Any], where: str) -> list[str]:
    errors: list[str] = []
    for node, path, parent_key in _walk(block, where):
        kind = node.get("type")
        if kind in _TEXT_TYPES:
            errors.extend(_text_object_errors(node, path, plain_only=parent_key in _PLAIN_ONLY))
        elif kind == "section":
            errors.extend(_section_errors(node, path))
        elif kind == "header":
            errors.extend(_text_object_errors(node.get("text"), f"{path}/text", plain_only=True))
        elif kind == "actions":
            errors.extend(_unique_action_ids(node, path))
        elif kind == "button" and not isinstance(node.get("text"), dict):
            errors.append(_err("button text is required", f"{path}/text"))
        elif kind == "plain_text_input":
            errors.extend(_text_input_errors(node, path))
        elif kind == "number_input" and not isinstance(node.get("is_decimal_allowed"), bool):
            errors.append(_err("is_decimal_allowed is required", f"{path}/is_decimal_allowed"))
        if kind in _SELECTS or kind in _INLINE_CHOICES:
            errors.extend(_option_errors(node, path, str(kind)))
    return errors


def _text_object_errors(obj: Any, where: str, *, plain_only: bool) -> list[str]:
    if not isinstance(obj, dict) or obj.get("type") not in _TEXT_TYPES:
        return [_err("must be a text object", where)]
    errors = []
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        errors.append(_err("must be more than 0 characters", f"{where}/text"))
    if plain_only and obj.get("type") != "plain_text":
        errors.append(_err("must be a plain_text object", f"{where}/type"))
    return errors


def _section_errors(section: dict[str, Any], where: str) -> list[str]:
    errors = []
    for index, item in enumerate(section.get("fields") or []):
        text = item.get("text") if isinstance(item, dict) else None
        if isinstance(text, str) and len(text) > SECTION_FIELD_MAX:
            message = f"must be less than {SECTION_FIELD_MAX + 1} characters"
            errors.append(_err(message, f"{where}/fields/{index}/text"))
    return errors


def _unique_action_ids(actions: dict[str, Any], where: str) -> list[str]:
    seen: set[str] = set()
    errors = []
    for index, element in enumerate(actions.get("elements") or []):
        action_id = element.get("action_id") if isinstance(element, dict) else None
        if isinstance(action_id, str):
            if action_id in seen:
                message = f"duplicate action_id {action_id!r}"
                errors.append(_err(message, f"{where}/elements/{index}/action_id"))
            seen.add(action_id)
    return errors


def _text_input_errors(element: dict[str, Any], where: str) -> list[str]:
    errors = []
    low, high = element.get("min_length"), element.get("max_length")
    if low is not None and not (isinstance(low, int) and 0 <= low <= TEXT_INPUT_LENGTH_MAX):
        errors.append(_err(f"min_length must be 0..{TEXT_INPUT_LENGTH_MAX}", f"{where}/min_length"))
    if high is not None and not (isinstance(high, int) and 1 <= high <= TEXT_INPUT_LENGTH_MAX):
        errors.append(_err(f"max_length must be 1..{TEXT_INPUT_LENGTH_MAX}", f"{where}/max_length"))
    if isinstance(low, int) and isinstance(high, int) and low > high:
        errors.append(_err("min_length must not exceed max_length", f"{where}/min_length"))
    return errors


def _option_errors(element: dict[str, Any], where: str, kind: str) -> list[str]:
    options = element.get("options")
    if options is None and kind in _SELECTS and element.get("option_groups"):
        return []  # option groups are checked by slack-sdk
    if not isinstance(options, list) or not options:
        return [_err("options must be a non-empty array", f"{where}/options")]
    errors = []
    if kind in _INLINE_CHOICES and len(options) > INLINE_OPTIONS_MAX:
        message = f"no more than {INLINE_OPTIONS_MAX} items allowed"
        errors.append(_err(message, f"{where}/options"))
    for index, option in enumerate(options):
        errors.extend(_one_option_errors(option, f"{where}/options/{index}", kind))
    chosen = element.get("initial_options") or []
    if element.get("initial_option") is not None:
        chosen = [element["initial_option"]]
    for index, option in enumerate(chosen):
        if option not in options:
            message = "initial option must exactly match one of the options"
            errors.append(_err(message, f"{where}/initial_options/{index}"))
    return errors


def _one_option_errors(option: Any, where: str, kind: str) -> list[str]:
    if not isinstance(option, dict):
        return [_err("option must be an object", where)]
    errors = []
    text = option.get("text")
    errors.extend(_text_object_errors(text, f"{where}/text", plain_only=kind in _SELECTS))
    if isinstance(text, dict) and len(str(text.get("text", ""))) > OPTION_TEXT_MAX:
        message = f"must be less than {OPTION_TEXT_MAX + 1} characters"
        errors.append(_err(message, f"{where}/text/text"))
    value = option.get("value")
    if not isinstance(value, str) or not value or len(value) > OPTION_VALUE_MAX:
        errors.append(_err(f"value must be 1..{OPTION_VALUE_MAX} characters", f"{where}/value"))
    return errors
