"""Hostile requests for the fuzz test: seeded, varied, and never one that should change state.

``Hostile(rng, ids).request()`` returns one request aimed at ``/slack/events``, ``/hooks``
or ``/api``: signed or not, with malformed JSON or forms, deep nesting, huge numbers, wrong
content types, over-size bodies, stale or wrong signatures and tokens, bad ids, unicode
digits, odd ``Last-Event-ID`` values and group actors. ``Raw`` requests are sent over a
bare socket (truncated bodies, lying lengths, broken request lines). Every request is one a
correct server refuses: none may start, answer or cancel anything.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from bot.web.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from tests.bot.web.service import SECRET as WEBHOOK_SECRET
from tests.bot.web.service import TOKEN
from tests.fakes.signing import sign as slack_sign
from tests.support.slack_bot import SECRET as SLACK_SECRET

__all__ = ["Hostile", "Ids", "Raw", "Request"]

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
GROUP_ACTORS = ["group:S0PROD", "S0PROD", "@ops", "<!subteam^S0PROD>", "!subteam^S1", "a b", ""]
ODD_DIGITS = ["²", "٣", "9223372036854775808", "-1", "1e9", "0x1f", "9" * 5000, "１２"]


@dataclass
class Request:
    """An HTTP request sent with aiohttp."""

    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    kind: str = ""


@dataclass
class Raw:
    """Bytes sent as is over a fresh connection (then the write side is closed)."""

    data: bytes
    kind: str = ""


@dataclass
class Ids:
    """Real ids to aim at: a suspended run and its pending interrupt."""

    run_id: str
    interrupt_id: str


class Hostile:
    """Makes hostile requests from a seeded ``random.Random``."""

    def __init__(self, rng: random.Random, ids: Ids) -> None:
        self.rng = rng
        self.ids = ids

    def request(self) -> Request | Raw:
        """One hostile request, of a kind picked at random."""
        makers = [
            self.slack_unsigned, self.slack_signed_junk, self.slack_signed_shapes,
            self.slack_forged_click, self.webhook_unsigned, self.webhook_signed_junk,
            self.api_bad_auth, self.api_bodies, self.api_actors, self.api_queries,
            self.api_stream, self.raw,
        ]  # fmt: skip
        return self.rng.choice(makers)()

    # -- building blocks ---------------------------------------------------------------
    def junk_json(self) -> bytes:
        """Text that is not JSON, or JSON a server must not choke on."""
        r = self.rng
        return r.choice(
            [
                b"hello", b"{", b"[" * r.randint(100, 200_000), b"1" * r.randint(4000, 9000),
                b"{" * 5000 + b"}" * 5000, b'{"a": NaN}', b'{"a": Infinity}', b"\xff\xfe\x00",
                b'{"a": ' + b"[" * 70 + b"]" * 70 + b"}", b"null", b"[1]", b'"text"',
                b"-" + b"9" * 5000, b'{"a": 1e999999}', b'{"\\ud800": 1}', b"",
                json.dumps({"workflow": "change", "input": {"service": 7}}).encode(),
                json.dumps({"workflow": "nope"}).encode(), bytes(r.randbytes(r.randint(1, 300))),
            ]
        )  # fmt: skip

    def junk_value(self) -> Any:
        """A JSON value of a random wrong type."""
        r = self.rng
        return r.choice([None, 5, -1.5, True, [], [1], {}, {"id": 5}, "x", "", 10**30, [[[]]]])

    def wrong_type(self) -> Any:
        """A JSON value that is not a string (so never a valid ``service`` or ``actor``)."""
        return self.rng.choice([None, 5, -1.5, True, [], [1], {}, {"id": 5}, 10**30, [[[]]]])

    def content_type(self) -> str:
        """A plausible or odd content type."""
        return self.rng.choice(
            [JSON, FORM, "text/plain", "application/json; charset=latin-1", "foo/bar",
             "application/vnd.x+json", "multipart/form-data; boundary=x", "Application/JSON", ""]
        )  # fmt: skip

    def slack_headers(self, body: bytes, content_type: str | None = None) -> dict[str, str]:
        """Valid Slack signature headers for ``body``."""
        headers = slack_sign(body.decode("utf-8", errors="replace"), secret=SLACK_SECRET)
        return {**headers, "Content-Type": content_type or FORM}

    # -- /slack/events -----------------------------------------------------------------
    def slack_unsigned(self) -> Request:
        r, now = self.rng, int(time.time())
        headers = r.choice(
            [
                {},
                {"X-Slack-Request-Timestamp": str(now), "X-Slack-Signature": "v0=" + "0" * 64},
                {"X-Slack-Request-Timestamp": r.choice(ODD_DIGITS), "X-Slack-Signature": "v0=a"},
                {"X-Slack-Request-Timestamp": str(now), "X-Slack-Signature": "v0=é"},
                slack_sign("other body", secret=SLACK_SECRET),
                slack_sign("x", secret=SLACK_SECRET, timestamp=now - 400),
                slack_sign("x", secret="wrong-secret"),
            ]
        )
        body = r.choice([self.junk_json(), b"payload=" + self.junk_json(), b"command=/signoff"])
        return Request(
            "POST",
            "/slack/events",
            body,
            {**headers, "Content-Type": self.content_type()},
            "slack unsigned",
        )

    def slack_signed_junk(self) -> Request:
        r = self.rng
        body = r.choice(
            [
                self.junk_json(),
                b"payload=" + quote(self.junk_json().decode("utf-8", "replace")).encode(),
                b"payload=null", b"payload=%5B1%5D", b"a=b&c", b"payload=", b"=&=&",
            ]
        )  # fmt: skip
        body = body.decode("utf-8", "replace").encode()  # signed bodies are UTF-8
        return Request(
            "POST",
            "/slack/events",
            body,
            self.slack_headers(body, self.content_type()),
            "slack signed junk",
        )

    def slack_signed_shapes(self) -> Request:
        """A payload of a kind Signoff handles, with one part replaced by junk."""
        r = self.rng
        payloads: list[dict[str, Any]] = [
            {"type": "block_actions", "user": {"id": "U0ALICE"}, "actions": [
                {"action_id": "signoff:approve", "value": "s1.x.y.z", "block_id": "b"}],
             "container": {"channel_id": "C0APPROVALS"}, "team": {"id": "T0FAKE"}},
            {"type": "view_submission", "user": {"id": "U0ALICE"}, "view": {
                "type": "modal", "callback_id": "signoff:respond", "private_metadata": "s1.x.y.z",
                "state": {"values": {"b": {"a": {"type": "plain_text_input", "value": "v"}}}}}},
            {"type": "event_callback", "event": {"type": "app_home_opened", "user": "U0ALICE"}},
            {"type": "view_closed", "user": {"id": "U0ALICE"},
             "view": {"type": "modal", "callback_id": "x"}},
            {"type": "url_verification"},
            {"type": r.choice(["shortcut", "block_suggestion", "message_action", 5, None])},
        ]  # fmt: skip
        payload = r.choice(payloads)
        key = r.choice([*payload.keys(), "authorizations", "team", "enterprise", "response_urls"])
        payload[key] = self.junk_value()
        if r.random() < 0.5:
            body = urlencode({"payload": json.dumps(payload)}).encode()
            return Request("POST", "/slack/events", body, self.slack_headers(body), "slack shape")
        text = r.choice(["help", "list", "", "start nope", "¿?", "x" * 999])
        command = {"command": "/signoff", "user_id": r.choice(["", "U0DAVE"]), "text": text}
        if command["user_id"] == "U0DAVE":
            command.pop(r.choice(["command", "user_id"]))
        body = urlencode(command).encode()
        if r.random() < 0.5:
            body = json.dumps({**payload, **command}).encode()
        return Request(
            "POST",
            "/slack/events",
            body,
            self.slack_headers(body, r.choice([FORM, JSON])),
            "slack shape",
        )

    def slack_forged_click(self) -> Request:
        """A well-formed click whose button reference is forged (refused, nothing changes)."""
        value = self.rng.choice(["", "s1", "s1.a.b.c", "s2." + "A" * 300, "s1.\x00.\x00.\x00"])
        payload = {
            "type": "block_actions", "user": {"id": "U0ALICE"}, "trigger_id": "1.2.3",
            "actions": [{"type": "button", "action_id": "signoff:approve", "value": value}],
            "container": {"type": "message", "channel_id": "C0APPROVALS"},
        }  # fmt: skip
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return Request("POST", "/slack/events", body, self.slack_headers(body), "slack forged")

    # -- /hooks ------------------------------------------------------------------------
    def hook_path(self) -> str:
        r = self.rng
        return r.choice(
            [
                "/hooks/change", "/hooks/nope", "/hooks/%00", "/hooks/" + "a" * 3000,
                f"/hooks/change/runs/{self.ids.run_id}/events/payment",
                f"/hooks/change/runs/{quote('../../x', safe='')}/events/e", "/hooks/change/runs/x",
            ]
        )  # fmt: skip

    def webhook_unsigned(self) -> Request:
        r, now = self.rng, int(time.time())
        body = self.junk_json()
        headers = r.choice(
            [
                {},
                {TIMESTAMP_HEADER: r.choice(ODD_DIGITS), SIGNATURE_HEADER: "v1=00"},
                {
                    TIMESTAMP_HEADER: str(now - 1000),
                    SIGNATURE_HEADER: sign(WEBHOOK_SECRET, now - 1000, body),
                },
                {TIMESTAMP_HEADER: str(now), SIGNATURE_HEADER: sign("wrong", now, body)},
                {TIMESTAMP_HEADER: str(now), SIGNATURE_HEADER: "v1=é," * 50},
            ]
        )
        size = r.random()
        if size < 0.05:
            body = b"{" + b" " * (1024 * 1024 + 10) + b"}"  # over 1 MiB: 413
        headers["Content-Type"] = r.choice([JSON, self.content_type()])
        return Request("POST", self.hook_path(), body, headers, "webhook unsigned")

    def webhook_signed_junk(self) -> Request:
        r, now = self.rng, int(time.time())
        body = r.choice(
            [self.junk_json(), json.dumps({"service": self.wrong_type()}).encode(), b"{}"]
        )
        headers = {
            TIMESTAMP_HEADER: str(now),
            SIGNATURE_HEADER: sign(WEBHOOK_SECRET, now, body),
            "Content-Type": r.choice([JSON, JSON, self.content_type()]),
            "Idempotency-Key": r.choice(["k", "", "x" * 500, "\u00e9"]),
        }
        return Request("POST", self.hook_path(), body, headers, "webhook signed")

    # -- /api --------------------------------------------------------------------------
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}

    def api_bad_auth(self) -> Request:
        r = self.rng
        auth = r.choice(["", "Bearer", "Bearer nope", f"Basic {TOKEN}", f"Bearer {TOKEN}x",
                         "Bearer " + "é" * 10, f"bearer  {TOKEN[:-1]}"])  # fmt: skip
        method, path = r.choice([("GET", "/api/runs"), ("POST", "/api/runs"),
                                 ("POST", f"/api/runs/{self.ids.run_id}/cancel")])  # fmt: skip
        return Request(
            method,
            path,
            self.junk_json(),
            {"Authorization": auth, "Content-Type": JSON},
            "api auth",
        )

    def resume_path(self, run_id: str | None = None, interrupt_id: str | None = None) -> str:
        run = quote(run_id or self.ids.run_id, safe="")
        interrupt = quote(interrupt_id or self.ids.interrupt_id, safe="")
        return f"/api/runs/{run}/interrupts/{interrupt}/resume"

    def api_bodies(self) -> Request:
        r = self.rng
        path = r.choice(["/api/runs", f"/api/runs/{self.ids.run_id}/cancel", self.resume_path()])
        body = r.choice(
            [
                self.junk_json(),
                json.dumps({"workflow": "change", "input": {"service": self.wrong_type()}})
                .encode(),
                json.dumps({"reason": self.junk_value(), "extra": 1}).encode(),
                json.dumps({"data": self.junk_value(), "actor": "U0ALICE", "x": 1}).encode(),
                json.dumps({"data": {"approved": "maybe"}, "actor": "U0ALICE"}).encode(),
            ]
        )  # fmt: skip
        if not body.strip():
            body = b"{"  # an empty body is a valid cancel
        headers = {**self.auth(), "Content-Type": r.choice([JSON, JSON, self.content_type()])}
        if r.random() < 0.05:
            headers["Content-Length"] = str(2 * 1024 * 1024)
            body = b" " * (2 * 1024 * 1024)
        return Request("POST", path, body, headers, "api body")

    def api_actors(self) -> Request:
        r = self.rng
        actor = r.choice(GROUP_ACTORS)
        if r.random() < 0.5:
            body = {"data": {"approved": True}, "actor": actor}
            return Request(
                "POST",
                self.resume_path(),
                json.dumps(body).encode(),
                {**self.auth(), "Content-Type": JSON},
                "api group actor",
            )
        path = f"/api/runs/{self.ids.run_id}/cancel"
        return Request(
            "POST",
            path,
            json.dumps({"actor": actor}).encode(),
            {**self.auth(), "Content-Type": JSON},
            "api group actor",
        )

    def api_queries(self) -> Request:
        r = self.rng
        value = quote(r.choice(ODD_DIGITS + ["", "%", "completed", "\x00"]), safe="")
        path = r.choice(
            [
                f"/api/runs?limit={value}", f"/api/runs?status={value}&offset={value}",
                f"/api/runs/{self.ids.run_id}/events?after={value}",
                f"/api/interrupts?limit={value}", f"/api/runs/{value}",
                f"/api/workflows/{value}", f"/api/runs/{quote('%00', safe='')}",
                self.resume_path(interrupt_id=r.choice(["nope", "0:x#9", "%"])),
                self.resume_path(run_id="nope"),
            ]
        )  # fmt: skip
        method = "POST" if path.endswith("/resume") else "GET"
        body = json.dumps({"data": {"approved": True}, "actor": "U0ALICE"}).encode()
        return Request(
            method,
            path,
            body if method == "POST" else b"",
            {**self.auth(), "Content-Type": JSON},
            "api query",
        )

    def api_stream(self) -> Request:
        """Streams only with a Last-Event-ID that must be refused, or of unknown runs."""
        r = self.rng
        if r.random() < 0.8:
            path = f"/api/runs/{self.ids.run_id}/stream"
            last = r.choice(ODD_DIGITS[:6] + ["9" * 30, "1.5", "4611686018427387905"])
        else:
            path, last = "/api/runs/nope/stream", "5"
        return Request("GET", path, b"", {**self.auth(), "Last-Event-ID": last}, "api stream")

    # -- bare sockets ------------------------------------------------------------------
    def raw(self) -> Raw:
        r = self.rng
        auth = f"Authorization: Bearer {TOKEN}\r\n"
        path = r.choice(["/slack/events", "/hooks/change", "/api/runs", self.resume_path()])
        return Raw(
            r.choice(
                [
                    f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n"
                    "Content-Length: 500\r\n\r\n{\"a\":".encode(),
                    f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Transfer-Encoding: chunked\r\n"
                    "Content-Type: application/json\r\n\r\nzz\r\n{}\r\n".encode(),
                    f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: -5\r\n\r\n".encode(),
                    f"POST {path} HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
                    "{}".encode(),
                    f"GET {path} HTTP/1.1\r\nX: " .encode() + b"a" * 20000 + b"\r\n\r\n",
                    f"GET {path} HTTP/1.1\r\nX-\x00: y\r\n\r\n".encode(),
                    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS hello
                    b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                    f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Encoding: gzip\r\n"
                    "Content-Type: application/json\r\nContent-Length: 4\r\n\r\nabcd".encode(),
                ]
            ),
            "raw",
        )  # fmt: skip
