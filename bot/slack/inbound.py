"""The shapes of the Slack requests Signoff handles, checked before bolt reads them.

Bolt trusts a verified body: it indexes ``payload["user"]["id"]``, tests ``"id" in team``,
matches ``actions[0]["action_id"]`` with a regex, and so on, so a signed body of another
shape (``payload=null``, ``actions: []``, ``user: 7``) raises inside bolt or inside a
listener after the ack. ``check_payload`` takes the payload as bolt parsed it (its
``AsyncBoltRequest.body``: the body is parsed once, since un-escaping a click's
form-encoded payload, which embeds the whole message, is the costliest step of a click's
ack) and validates it against a small model per kind Signoff handles (slack-facts
§1.3-1.10): what bolt's context extraction and Signoff's listeners read must have the type
they expect. Anything else in a payload is allowed, as Slack adds fields over time.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.web.problems import json_depth_ok

__all__ = ["InvalidPayload", "UnhandledPayload", "check_payload"]


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


def check_payload(payload: Any) -> str:
    """Check the shape of a verified payload as bolt parsed it; return what kind it is.

    Raises:
        InvalidPayload: with a short reason (never the payload itself).
    """
    if not isinstance(payload, dict):
        raise InvalidPayload(f"the payload is a JSON {type(payload).__name__}, not an object")
    if not json_depth_ok(payload):
        raise InvalidPayload("the payload nests too deeply")
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
