"""bot.slack.inbound.parse_payload: the body parsed once, exactly as bolt parses it."""

from __future__ import annotations

import json
import random
from urllib.parse import quote_plus, urlencode

import pytest
from slack_bolt.request.internals import parse_body

from bot.slack.inbound import InvalidPayload, parse_payload
from bot.web.problems import MAX_JSON_DEPTH
from tests.fakes.signing import interactive_body, slash_command_body

FORM = "application/x-www-form-urlencoded"
PAYLOAD = {"type": "block_actions", "text": "ünïcode ✅ 100% & more = \\ back\\slash", "n": [1]}

BODIES = [
    interactive_body(PAYLOAD),
    slash_command_body(command="/signoff", text="pending 50% off + tax", user_id="U0ALICE"),
    urlencode({"ssl_check": "1", "token": "t"}),
    "a=1&a=2&b&&c=&=d",  # repeated, valueless, empty and nameless fields
    "x=%zz&y=%4&z=%%41",  # '%' without two hex digits stays as it is
    "x=%C3%28",  # not UTF-8: replaced, as urllib does
    "x=%E2%9C%85+%2B+caf%C3%A9",
    "x=ü%41",  # a non-ASCII character next to an escape
    "x=back\\slash%41",
    "x=%\n41&y=%\r\n41&z=%41\n",  # what quoted-printable reads as a soft line break
    "x=a=%41&y=%41%&z=_%5F",  # a '=' in a value; a final '%'; underscores
    "x==41%zz",  # a '=' that reads as an escape, and a '%' that does not: as many bytes
    "payload=" + quote_plus(json.dumps(PAYLOAD)) + "&other=1",
    "a=1;b=2",  # only '&' separates fields
]


@pytest.mark.parametrize("body", BODIES)
def test_a_form_body_parses_as_bolt_parses_it(body: str) -> None:
    assert parse_payload(body, FORM) == parse_body(body, FORM)


def test_random_form_bodies_parse_as_bolt_parses_them() -> None:
    pieces = ["%", "%4", "%41", "%C3", "%A9", "%zz", "+", "&", "=", "\\", "ü", "a", "payload"]
    pieces += ["%3D", "%0A", "\n", "\r", "_", "%%"]
    rng = random.Random(13)
    for _ in range(2000):
        body = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        try:
            expected = parse_body(body, FORM)
        except ValueError:  # a 'payload' field that is not JSON
            with pytest.raises(InvalidPayload):
                parse_payload(body, FORM)
            continue
        assert parse_payload(body, FORM) == expected, body


def test_json_bodies_and_bad_json() -> None:
    body = json.dumps({"type": "event_callback", "event": {"type": "app_home_opened"}})
    assert parse_payload(body, "application/json") == parse_body(body, "application/json")
    assert parse_payload("", FORM) == {}
    with pytest.raises(InvalidPayload):
        parse_payload("{not json", "application/json")
    with pytest.raises(InvalidPayload):
        parse_payload("payload=%7Bnot", FORM)


@pytest.mark.parametrize("form", [True, False], ids=["form payload", "JSON body"])
def test_nesting_past_the_limit_is_refused_at_the_parse(form: bool) -> None:
    def body(levels: int) -> str:
        text = '{"type": "block_actions", "x": ' + "[" * levels + "]" * levels + "}"
        return "payload=" + quote_plus(text) if form else text

    content_type = FORM if form else "application/json"
    assert parse_payload(body(MAX_JSON_DEPTH - 1), content_type)["type"] == "block_actions"
    with pytest.raises(InvalidPayload, match="nests too deeply"):
        parse_payload(body(MAX_JSON_DEPTH), content_type)
