"""The shapes of the Slack requests Signoff handles, checked before bolt reads them.

Bolt trusts a verified body: it indexes ``payload["user"]["id"]``, tests ``"id" in team``,
matches ``actions[0]["action_id"]`` with a regex, and so on, so a signed body of another
shape (``payload=null``, ``actions: []``, ``user: 7``) raises inside bolt or inside a
listener after the ack. ``parse_payload`` parses the body exactly as bolt would
(``slack_bolt.request.internals.parse_body``), once: the route hands the result to bolt.
``check_payload`` validates it against a small model per kind Signoff handles
(slack-facts §1.3-1.10): what bolt's context extraction and Signoff's listeners read must
have the type they expect. Anything else in a payload is allowed, as Slack adds fields
over time.

Un-escaping a click's form body (its payload embeds the whole message: thousands of
``%XX``) was the costliest step of a click's ack with ``urllib.parse``'s pure-Python
decoder, so well-formed form fields are decoded by binascii's C quoted-printable decoder
instead; anything else (a ``%`` not followed by two hex digits, a ``=`` or line break in
a value, bytes that are not UTF-8) goes through ``urllib.parse.parse_qsl`` as in bolt, so
the result is the same.
"""

from __future__ import annotations

import binascii
import json
from typing import Any, Literal
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.web.problems import json_depth_ok

__all__ = ["InvalidPayload", "UnhandledPayload", "check_payload", "parse_payload"]


class InvalidPayload(ValueError):
    """A verified Slack body that is not a payload Signoff can handle (400)."""


class UnhandledPayload(InvalidPayload):
    """A verified payload of a type Signoff has no listener for (bolt would answer 404).

    A new kind of listener needs its payload's model in ``_BY_TYPE`` first.
    """


class _Shape(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Id(_Shape):
    id: str | None = None


class _Holder(_Shape):
    """What bolt's ``extract_*_id`` helpers read at any level (payload, event, message...)."""

    team: str | _Id | None = None
    enterprise: str | _Id | None = None
    user: str | _Id | None = None
    channel: str | _Id | None = None
    team_id: str | None = None
    enterprise_id: str | None = None
    user_id: str | None = None
    channel_id: str | None = None
    user_team: str | None = None
    thread_ts: str | None = None
    is_enterprise_install: bool | str | None = None
    authorizations: list[_Holder] | None = None
    message: _Holder | None = None
    previous_message: _Holder | None = None
    item: _Holder | None = None
    assistant_thread: _Holder | None = None
    function_execution_id: str | None = None


class _ResponseUrl(_Shape):
    response_url: str | None = None


class _Envelope(_Holder):
    type: str | None = None
    event: _Holder | None = None
    is_ext_shared_channel: bool | None = None
    response_url: str | None = None
    # Bolt tests `"response_urls" in body`, then takes its len(): present means a list.
    response_urls: list[_ResponseUrl] = Field(default_factory=list)
    trigger_id: str | None = None


class _User(_Id):
    id: str = Field(min_length=1)


class _Option(_Shape):
    value: str | None = None


class _Action(_Shape):
    action_id: str
    block_id: str | None = None
    value: str | None = None
    selected_option: _Option | None = None


class _Container(_Shape):
    channel_id: str | None = None


class BlockActions(_Envelope):
    """A click: who clicked, and at least one action (bolt matches on the first)."""

    type: Literal["block_actions"]
    user: _User
    actions: list[_Action] = Field(min_length=1)
    container: _Container | None = None


class _State(_Shape):
    values: dict[str, dict[str, dict[str, Any]]]


class _View(_Shape):
    type: Literal["modal"]  # bolt reads it (a "workflow_step" view is another payload)
    callback_id: str
    private_metadata: str = ""
    app_installed_team_id: str | None = None
    state: _State


class _ClosedView(_View):
    state: _State | None = None  # type: ignore[assignment]


class ViewSubmission(_Envelope):
    """A submitted modal: who submitted it, and its input values."""

    type: Literal["view_submission"]
    user: _User
    view: _View


class ViewClosed(_Envelope):
    """A closed modal (only when it was opened with ``notify_on_close``)."""

    type: Literal["view_closed"]
    user: _User
    view: _ClosedView


class SlashCommand(_Envelope):
    """A slash command: form fields, all strings."""

    command: str
    user_id: str = Field(min_length=1)
    text: str = ""


class _Event(_Holder):
    type: str


class EventCallback(_Envelope):
    """An Events API delivery (``app_home_opened``...)."""

    type: Literal["event_callback"]
    event: _Event


class UrlVerification(_Envelope):
    """Slack checking the Events API request URL."""

    type: Literal["url_verification"]
    challenge: str


_BY_TYPE: dict[str, type[_Envelope]] = {
    "block_actions": BlockActions,
    "view_submission": ViewSubmission,
    "view_closed": ViewClosed,
    "event_callback": EventCallback,
    "url_verification": UrlVerification,
}


def parse_payload(body: str, content_type: str | None) -> Any:
    """Parse a verified body as bolt would (``parse_body``): JSON, a form's ``payload``
    field as JSON, or the form's fields.

    Args:
        body: the verified raw body, decoded as UTF-8.
        content_type: the ``Content-Type`` without parameters, as bolt reads it.

    Raises:
        InvalidPayload: not JSON or form data bolt could read, or JSON nesting deeper
            than ``MAX_JSON_DEPTH`` (which later code, serialising it again, could not
            take).
    """
    try:
        if not body:
            return {}
        if content_type == "application/json" or body.startswith("{"):
            return _loads(body)
        fields = _form_fields(body)
        if "payload" not in body:
            return fields  # flat: names and strings
        payload = fields.get("payload")
        return _loads(payload) if payload is not None else {}
    except InvalidPayload:
        raise  # a ValueError too, with its own reason
    except (ValueError, RecursionError, TypeError) as exc:  # JSON errors are ValueErrors
        raise InvalidPayload(f"not JSON or form data ({type(exc).__name__})") from None


def _loads(text: str) -> Any:
    value = json.loads(text)
    # Checked here, with the text: a click's payload is then not walked (json_depth_ok).
    if not json_depth_ok(value, text=text):
        raise InvalidPayload("the payload nests too deeply")
    return value


def _form_fields(body: str) -> dict[str, str]:
    """``dict(parse_qsl(body, keep_blank_values=True))``, with a C decoder when it can."""
    fields: dict[str, str] = {}
    for field in body.split("&"):
        if not field:
            continue
        name, _, value = field.partition("=")
        try:
            fields[_unescape(name)] = _unescape(value)
        except (UnicodeError, ValueError):
            return dict(parse_qsl(body, keep_blank_values=True))
    return fields


def _unescape(text: str) -> str:
    """Form-decode ``text`` (``+`` is a space, ``%XX`` a byte of UTF-8); raises where
    ``urllib.parse.unquote_plus`` would have to be lenient."""
    text = text.replace("+", " ")
    if "%" not in text:
        return text
    # binascii's quoted-printable decoder reads "=XX" as a byte, like "%XX" here (3.5 us
    # for a click's payload against 12 with the unicode_escape codec). It also reads "=="
    # and "=" + a line break, and keeps a "=" not followed by hex: so no "=", CR or LF may
    # be in the text already, and every escape must have been two hex digits, which is
    # when each took three characters to one byte (any other reading leaves more).
    if not text.isascii() or "=" in text or "\n" in text or "\r" in text:
        raise ValueError("not a plain form field")
    raw = binascii.a2b_qp(text.replace("%", "="))
    if len(raw) != len(text) - 2 * text.count("%"):
        raise ValueError("a '%' not followed by two hex digits")
    return raw.decode("utf-8")


def check_payload(payload: Any) -> str:
    """Check the shape of a verified payload as ``parse_payload`` parsed it (its depth is
    checked there); return what kind it is.

    Raises:
        InvalidPayload: with a short reason (never the payload itself).
    """
    if not isinstance(payload, dict):
        raise InvalidPayload(f"the payload is a JSON {type(payload).__name__}, not an object")
    if "ssl_check" in payload:
        return "ssl_check"
    model: type[_Envelope]
    if "command" in payload:  # bolt's own test for a slash command
        model, kind = SlashCommand, "command"
    else:
        given = payload.get("type")
        if not isinstance(given, str):
            raise InvalidPayload("the payload has no type")
        if given not in _BY_TYPE:
            raise UnhandledPayload(f"no listener for {given[:40]!r} payloads")
        model, kind = _BY_TYPE[given], given
    try:
        model.model_validate(payload)
    except ValidationError as exc:
        where = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors()[:3])
        raise InvalidPayload(f"{kind} payload of the wrong shape at {where}") from None
    except RecursionError:
        raise InvalidPayload("the payload nests too deeply") from None
    return kind
