"""Build and sign inbound Slack requests exactly as Slack sends them.

* Interactivity (``block_actions``, ``view_submission``) is form-encoded with one field,
  ``payload``, holding JSON; slash commands are plain form fields (slack-facts §1.1-1.5).
* Requests are signed with slack-sdk's ``SignatureVerifier.generate_signature`` (v0 HMAC over
  ``v0:<timestamp>:<raw body>``) into ``X-Slack-Request-Timestamp`` / ``X-Slack-Signature``.
* ``stale=True`` and ``wrong_secret=...`` produce the requests bolt must refuse.
* Events API deliveries (``event_callback`` such as ``app_home_opened``, and
  ``url_verification``) are JSON; ``signed_event`` signs them and can mark a redelivery with
  ``X-Slack-Retry-Num`` / ``X-Slack-Retry-Reason`` (slack-facts §1.8, §1.10).

Typical use against a rendered message stored by ``FakeSlack``::

    payload = block_actions_payload(message=fake.message(ch, ts).to_api(), channel_id=ch,
                                    action_id="signoff:approve", user_id="U0ALICE")
    request = signed_request(interactive_body(payload), secret=SECRET)
    await session.post(url, data=request.body, headers=request.headers)
"""

from __future__ import annotations

import copy
import itertools
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

__all__ = [
    "FORM_CONTENT_TYPE",
    "JSON_CONTENT_TYPE",
    "REPLAY_WINDOW_SECONDS",
    "SignedRequest",
    "app_home_opened_body",
    "block_actions_payload",
    "event_callback_body",
    "interactive_body",
    "sign",
    "signed_event",
    "signed_request",
    "slash_command_body",
    "state_values",
    "url_verification_body",
    "view_submission_payload",
]

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
JSON_CONTENT_TYPE = "application/json"
REPLAY_WINDOW_SECONDS = 300  # bolt rejects |now - timestamp| > 300
TEAM_ID, TEAM_DOMAIN, APP_ID = "T0FAKE", "fake-team", "A0SIGNOFF"
_counter = itertools.count(1)


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A raw body and the headers Slack would send with it."""

    body: str
    headers: dict[str, str]


def sign(body: str, *, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """The signature headers for ``body`` (timestamp defaults to now)."""
    stamp = int(time.time()) if timestamp is None else timestamp
    signature = SignatureVerifier(secret).generate_signature(timestamp=str(stamp), body=body)
    assert signature is not None  # None only for a missing timestamp or body
    return {"X-Slack-Request-Timestamp": str(stamp), "X-Slack-Signature": signature}


def signed_request(
    body: str,
    *,
    secret: str,
    timestamp: int | None = None,
    stale: bool = False,
    wrong_secret: str | None = None,
    content_type: str = FORM_CONTENT_TYPE,
) -> SignedRequest:
    """Sign ``body`` like Slack.

    Args:
        body: The raw body (see ``interactive_body`` / ``slash_command_body``).
        secret: The app's signing secret.
        timestamp: Unix seconds to sign with; defaults to now.
        stale: Sign correctly but with a timestamp just outside bolt's 5-minute window.
        wrong_secret: Sign with this secret instead, giving a well-formed but wrong signature.
        content_type: ``Content-Type`` header; form-encoded unless testing JSON events.
    """
    stamp = int(time.time()) if timestamp is None else timestamp
    if stale:
        stamp -= REPLAY_WINDOW_SECONDS + 1
    headers = sign(body, secret=wrong_secret or secret, timestamp=stamp)
    headers["Content-Type"] = content_type
    return SignedRequest(body=body, headers=headers)


def signed_event(
    body: str,
    *,
    secret: str,
    retry_num: int | None = None,
    retry_reason: str = "http_timeout",
    **options: Any,
) -> SignedRequest:
    """Sign an Events API ``body`` (JSON) like Slack; ``retry_num`` marks a redelivery.

    Slack redelivers the same body (same ``event_id``) with ``X-Slack-Retry-Num`` 1..3 and
    ``X-Slack-Retry-Reason``; ``options`` go to ``signed_request`` (``timestamp``,
    ``stale``, ``wrong_secret``).
    """
    request = signed_request(body, secret=secret, content_type=JSON_CONTENT_TYPE, **options)
    if retry_num is not None:
        request.headers["X-Slack-Retry-Num"] = str(retry_num)
        request.headers["X-Slack-Retry-Reason"] = retry_reason
    return request


def event_callback_body(
    event: Mapping[str, Any],
    *,
    event_id: str | None = None,
    event_time: int | None = None,
    team_id: str = TEAM_ID,
    bot_user_id: str = "U0SIGNOFF",
) -> str:
    """The JSON body of an ``event_callback`` delivering ``event``, fields in Slack's order."""
    return json.dumps(
        {
            "token": "deprecated-verification-token",
            "team_id": team_id,
            "api_app_id": APP_ID,
            "event": dict(event),
            "type": "event_callback",
            "event_id": event_id or f"Ev{next(_counter):010d}",
            "event_time": int(time.time()) if event_time is None else event_time,
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": team_id,
                    "user_id": bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }
    )


def app_home_opened_body(
    *,
    user_id: str = "U0ALICE",
    channel: str | None = None,
    tab: str = "home",
    view: Mapping[str, Any] | None = None,
    event_id: str | None = None,
    team_id: str = TEAM_ID,
) -> str:
    """An ``app_home_opened`` delivery: ``user_id`` opened the app's Home (or Messages) tab.

    ``channel`` defaults to the app's DM with the user (``D`` + the user id without its
    ``U``, as ``FakeSlack`` names it); ``view`` is the Home tab last published, if any.
    """
    event: dict[str, Any] = {
        "type": "app_home_opened",
        "user": user_id,
        "channel": channel or "D" + user_id[1:],
        "tab": tab,
        "event_ts": f"{time.time():.6f}",
    }
    if view is not None:
        event["view"] = dict(view)
    return event_callback_body(event, event_id=event_id, team_id=team_id)


def url_verification_body(
    challenge: str = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
) -> str:
    """The JSON body Slack sends once to check an Events API Request URL."""
    return json.dumps(
        {
            "token": "deprecated-verification-token",
            "challenge": challenge,
            "type": "url_verification",
        }
    )


def interactive_body(payload: Mapping[str, Any]) -> str:
    """``payload=<url-encoded JSON>``, the body of every interactivity request."""
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))})


def slash_command_body(
    *,
    command: str = "/signoff",
    text: str = "",
    user_id: str = "U0ALICE",
    user_name: str = "alice",
    channel_id: str = "C0APPROVALS",
    channel_name: str = "approvals",
    response_url: str = "https://hooks.slack.com/commands/T0FAKE/1/abc",
    trigger_id: str | None = None,
    team_id: str = TEAM_ID,
) -> str:
    """The form body of a slash command, fields in Slack's order."""
    fields = {
        "token": "deprecated-verification-token",
        "team_id": team_id,
        "team_domain": TEAM_DOMAIN,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id or _trigger_id(),
    }
    return urlencode(fields)


def block_actions_payload(
    *,
    message: Mapping[str, Any],
    action_id: str,
    channel_id: str = "C0APPROVALS",
    user_id: str = "U0ALICE",
    user_name: str = "alice",
    selected: str | None = None,
    block_id: str | None = None,
    response_url: str = "https://hooks.slack.com/actions/T0FAKE/1/abc",
    trigger_id: str | None = None,
    team_id: str = TEAM_ID,
) -> dict[str, Any]:
    """A ``block_actions`` payload for clicking ``action_id`` in ``message``.

    Args:
        message: The message as Slack returns it (``StoredMessage.to_api()`` or a
            chat.postMessage ``message``); the clicked element is looked up in its blocks.
        action_id: The element clicked.
        channel_id: Where the message is.
        user_id: Who clicked.
        user_name: Their user name.
        selected: For a select menu, the option ``value`` chosen.
        block_id: Restrict the lookup to this block, when action ids repeat across blocks.
        response_url: Where ``respond()`` should post; point it at ``FakeSlack.response_url``.
        trigger_id: Defaults to a fresh, unique trigger id.
        team_id: The workspace.
    """
    block, element = _find_element(message.get("blocks") or [], action_id, block_id)
    action = _action(block, element, selected)
    return {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": APP_ID,
        "token": "deprecated-verification-token",
        "container": {
            "type": "message",
            "message_ts": message["ts"],
            "channel_id": channel_id,
            "is_ephemeral": False,
        },
        "trigger_id": trigger_id or _trigger_id(),
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": "approvals"},
        "message": dict(message),
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [action],
    }


def home_block_actions_payload(
    *,
    view: Mapping[str, Any],
    action_id: str,
    user_id: str = "U0ALICE",
    block_index: int = 0,
    team_id: str = TEAM_ID,
) -> dict[str, Any]:
    """A ``block_actions`` payload for clicking ``action_id`` in the ``block_index``-th
    actions block of a published App Home ``view``, as Slack sends it: container ``view``,
    the view itself, no channel, message or response_url."""
    controls = [b for b in view.get("blocks") or [] if b["type"] == "actions"]
    block = controls[block_index]
    element = next(e for e in block["elements"] if e["action_id"] == action_id)
    name = user_id.lower()
    return {
        "type": "block_actions",
        "user": {"id": user_id, "username": name, "name": name, "team_id": team_id},
        "api_app_id": APP_ID,
        "token": "deprecated-verification-token",
        "container": {"type": "view", "view_id": view["id"]},
        "trigger_id": _trigger_id(),
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "view": copy.deepcopy(dict(view)),
        "actions": [_action(block, element, None)],
    }


def view_submission_payload(
    *,
    view: Mapping[str, Any],
    answers: Mapping[str, Any] | None = None,
    values: Mapping[str, Any] | None = None,
    user_id: str = "U0ALICE",
    user_name: str = "alice",
    view_id: str = "V0000000001",
    team_id: str = TEAM_ID,
) -> dict[str, Any]:
    """A ``view_submission`` payload for submitting ``view`` (as opened by the app).

    Give ``answers`` (what the person entered, by block id; see ``state_values``) or the raw
    ``values`` for ``view.state.values``.
    """
    state = dict(values) if values is not None else state_values(view, answers or {})
    echoed = {
        "id": view_id,
        "team_id": team_id,
        "type": "modal",
        "blocks": list(view.get("blocks") or []),
        "private_metadata": view.get("private_metadata", ""),
        "callback_id": view.get("callback_id", ""),
        "state": {"values": state},
        "hash": f"{int(time.time())}.abcdef",
        "title": view.get("title"),
        "clear_on_close": bool(view.get("clear_on_close", False)),
        "notify_on_close": bool(view.get("notify_on_close", False)),
        "close": view.get("close"),
        "submit": view.get("submit"),
        "previous_view_id": None,
        "root_view_id": view_id,
        "app_id": APP_ID,
        "external_id": view.get("external_id", ""),
        "app_installed_team_id": team_id,
        "bot_id": "B0SIGNOFF",
    }
    return {
        "type": "view_submission",
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": APP_ID,
        "token": "deprecated-verification-token",
        "trigger_id": _trigger_id(),
        "view": echoed,
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def state_values(view: Mapping[str, Any], answers: Mapping[str, Any]) -> dict[str, Any]:
    """``view.state.values`` as Slack sends it for ``view``'s input blocks.

    ``answers`` maps block ids to what the person did, in Slack's terms: the text typed
    (text, email, url and number inputs: a string), the option ``value`` or list of values
    picked (selects, radio buttons, checkboxes), ``"YYYY-MM-DD"``, ``"HH:MM"``, Unix seconds
    for a datetimepicker, user / conversation IDs. ``None`` clears an input. Inputs not in
    ``answers`` keep their initial value, as they do in Slack.
    """
    state: dict[str, Any] = {}
    for block in view.get("blocks") or []:
        if block.get("type") != "input":
            continue
        element = block["element"]
        given = block["block_id"] in answers
        answer = answers.get(block["block_id"])
        value = _element_state(element, answer, given)
        state[block["block_id"]] = {element["action_id"]: value}
    return state


_SINGLE_OPTION = {"static_select", "radio_buttons", "external_select"}
_MANY_OPTIONS = {"multi_static_select", "checkboxes", "multi_external_select"}
_PLAIN_VALUE = {
    "plain_text_input": ("value", "initial_value"),
    "email_text_input": ("value", "initial_value"),
    "url_text_input": ("value", "initial_value"),
    "number_input": ("value", "initial_value"),
    "datepicker": ("selected_date", "initial_date"),
    "timepicker": ("selected_time", "initial_time"),
    "datetimepicker": ("selected_date_time", "initial_date_time"),
    "users_select": ("selected_user", "initial_user"),
    "multi_users_select": ("selected_users", "initial_users"),
    "conversations_select": ("selected_conversation", "initial_conversation"),
    "multi_conversations_select": ("selected_conversations", "initial_conversations"),
    "channels_select": ("selected_channel", "initial_channel"),
    "multi_channels_select": ("selected_channels", "initial_channels"),
}


def _element_state(element: Mapping[str, Any], answer: Any, given: bool) -> dict[str, Any]:
    kind = element["type"]
    state: dict[str, Any] = {"type": kind}
    if kind in _SINGLE_OPTION:
        if not given:
            state["selected_option"] = element.get("initial_option")
        else:
            state["selected_option"] = (
                _options(element, [answer])[0] if answer is not None else None
            )
    elif kind in _MANY_OPTIONS:
        if not given:
            state["selected_options"] = element.get("initial_options") or []
        else:
            state["selected_options"] = _options(element, list(answer or []))
    elif kind in _PLAIN_VALUE:
        key, initial_key = _PLAIN_VALUE[kind]
        empty: Any = [] if kind.startswith("multi_") else None
        state[key] = answer if given else element.get(initial_key, empty)
        if state[key] is None:
            state[key] = empty
        if kind == "timepicker":
            state["timezone"] = "Europe/London"  # Slack adds the picker's time zone
    else:
        raise ValueError(f"no state shape known for element type {kind!r}")
    return state


def _options(element: Mapping[str, Any], values: Sequence[Any]) -> list[dict[str, Any]]:
    by_value = {option["value"]: option for option in element.get("options") or []}
    missing = [value for value in values if value not in by_value]
    if missing:
        raise ValueError(f"{missing} are not options of {element.get('action_id')!r}")
    return [by_value[value] for value in values]


def _find_element(
    blocks: Sequence[Mapping[str, Any]], action_id: str, block_id: str | None
) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    for block in blocks:
        if block_id is not None and block.get("block_id") != block_id:
            continue
        candidates = list(block.get("elements") or [])
        if block.get("accessory"):
            candidates.append(block["accessory"])
        for element in candidates:
            if isinstance(element, Mapping) and element.get("action_id") == action_id:
                return block, element
    raise ValueError(f"no element with action_id {action_id!r} in the message")


def _action(
    block: Mapping[str, Any], element: Mapping[str, Any], selected: str | None
) -> dict[str, Any]:
    action: dict[str, Any] = {
        "type": element["type"],
        "block_id": block.get("block_id", ""),
        "action_id": element["action_id"],
        "action_ts": f"{time.time():.6f}",
    }
    if element["type"] == "button":
        action["text"] = element["text"]
        for key in ("value", "style", "url"):
            if key in element:
                action[key] = element[key]
    elif element["type"] in _SINGLE_OPTION:
        chosen = _options(element, [selected]) if selected is not None else [None]
        action["selected_option"] = chosen[0]
        if "placeholder" in element:
            action["placeholder"] = element["placeholder"]
    else:
        raise ValueError(f"clicking a {element['type']!r} is not supported here")
    return action


def _trigger_id() -> str:
    # Slack's shape: <digits>.<digits>.<hex>; unique per interaction, which views.open needs.
    return f"{int(time.time())}{next(_counter):04d}.47445629121.{next(_counter):032x}"
