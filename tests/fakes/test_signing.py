"""Inbound requests built by tests.fakes.signing are signed and shaped exactly like Slack's."""

from __future__ import annotations

import time

import pytest
from slack_bolt.request.internals import parse_body
from slack_sdk.signature import SignatureVerifier

from tests.fakes.signing import (
    block_actions_payload,
    interactive_body,
    sign,
    signed_request,
    slash_command_body,
    state_values,
    view_submission_payload,
)

# The official test vector (python-slack-sdk tests; docs.slack.dev verifying requests).
VECTOR_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
VECTOR_TIMESTAMP = 1531420618
VECTOR_BODY = (
    "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow"
    "&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner"
    "&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands"
    "%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    "&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
VECTOR_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
SECRET = "test-signing-secret"


def test_signing_matches_the_official_vector() -> None:
    headers = sign(VECTOR_BODY, secret=VECTOR_SECRET, timestamp=VECTOR_TIMESTAMP)

    assert headers == {
        "X-Slack-Request-Timestamp": str(VECTOR_TIMESTAMP),
        "X-Slack-Signature": VECTOR_SIGNATURE,
    }


def test_a_fresh_signed_request_verifies_and_stale_or_forged_ones_do_not() -> None:
    verifier = SignatureVerifier(SECRET)
    body = slash_command_body(text="list")

    def verifies(request_headers: dict[str, str]) -> bool:
        return verifier.is_valid_request(body, request_headers)

    assert verifies(signed_request(body, secret=SECRET).headers)
    assert not verifies(signed_request(body, secret=SECRET, stale=True).headers)
    assert not verifies(signed_request(body, secret=SECRET, wrong_secret="nope").headers)


def test_a_stale_request_is_just_outside_the_five_minute_window() -> None:
    now = int(time.time())

    headers = signed_request("x=1", secret=SECRET, timestamp=now, stale=True).headers

    assert now - int(headers["X-Slack-Request-Timestamp"]) == 301


def test_a_slash_command_body_parses_into_slack_form_fields() -> None:
    body = slash_command_body(command="/signoff", text="cancel run 42", user_id="U0BOB")

    fields = parse_body(body, "application/x-www-form-urlencoded")

    assert fields["command"] == "/signoff"
    assert fields["text"] == "cancel run 42"
    assert fields["user_id"] == "U0BOB"
    assert fields["trigger_id"] and fields["response_url"].startswith("https://")


MESSAGE = {
    "type": "message",
    "ts": "1700000000.000100",
    "text": "Approve?",
    "blocks": [
        {
            "type": "actions",
            "block_id": "signoff_controls",
            "elements": [
                {
                    "type": "button",
                    "action_id": "signoff:approve",
                    "text": {"type": "plain_text", "text": "Approve", "emoji": True},
                    "value": "ref-1",
                    "style": "primary",
                }
            ],
        }
    ],
}


def test_a_button_click_payload_survives_bolt_parsing_and_carries_the_button() -> None:
    payload = block_actions_payload(
        message=MESSAGE, action_id="signoff:approve", user_id="U0BOB", channel_id="C0X"
    )

    parsed = parse_body(interactive_body(payload), "application/x-www-form-urlencoded")

    assert parsed == payload
    [action] = parsed["actions"]
    assert (action["action_id"], action["value"], action["block_id"]) == (
        "signoff:approve",
        "ref-1",
        "signoff_controls",
    )
    assert parsed["container"]["message_ts"] == MESSAGE["ts"]
    assert parsed["user"]["id"] == "U0BOB"
    assert parsed["channel"]["id"] == "C0X"


def test_each_click_gets_its_own_trigger_id() -> None:
    first = block_actions_payload(message=MESSAGE, action_id="signoff:approve")
    second = block_actions_payload(message=MESSAGE, action_id="signoff:approve")

    assert first["trigger_id"] != second["trigger_id"]


def test_clicking_an_element_that_is_not_in_the_message_is_refused() -> None:
    with pytest.raises(ValueError, match="no element"):
        block_actions_payload(message=MESSAGE, action_id="signoff:reject")


VIEW = {
    "type": "modal",
    "callback_id": "signoff_respond",
    "private_metadata": "ref-9",
    "title": {"type": "plain_text", "text": "Respond"},
    "submit": {"type": "plain_text", "text": "Submit"},
    "blocks": [
        {
            "type": "input",
            "block_id": "reason",
            "label": {"type": "plain_text", "text": "Reason"},
            "element": {"type": "plain_text_input", "action_id": "reason"},
        },
        {
            "type": "input",
            "block_id": "when",
            "label": {"type": "plain_text", "text": "When"},
            "element": {"type": "timepicker", "action_id": "when", "initial_time": "09:30"},
        },
    ],
}


def test_a_view_submission_echoes_the_view_with_state_values() -> None:
    payload = view_submission_payload(view=VIEW, answers={"reason": "looks fine"})

    view = payload["view"]
    assert payload["type"] == "view_submission"
    assert (view["callback_id"], view["private_metadata"]) == ("signoff_respond", "ref-9")
    assert view["state"]["values"] == {
        "reason": {"reason": {"type": "plain_text_input", "value": "looks fine"}},
        "when": {
            "when": {"type": "timepicker", "selected_time": "09:30", "timezone": "Europe/London"}
        },
    }


def test_untouched_inputs_are_sent_empty_or_with_their_initial_value() -> None:
    values = state_values(VIEW, {"when": None})

    assert values["reason"]["reason"]["value"] is None
    assert values["when"]["when"]["selected_time"] is None
