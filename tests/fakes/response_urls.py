"""``response_url`` endpoints of the fake Slack: minted per test, used at most 5 times."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.blockkit import check_message
from tests.fakes.slack_state import SlackState
from tests.fakes.wire import ResponseUrlPost, ValidationFailure

__all__ = ["RESPONSE_URL_USES", "ResponseUrls"]

RESPONSE_URL_USES = 5


@dataclass
class _ResponseUrl:
    channel: str | None
    ts: str | None
    uses: int = 0
    posts: list[ResponseUrlPost] = field(default_factory=list)


class ResponseUrls:
    """The minted URLs; bound to a stored message, ``replace_original`` edits it."""

    def __init__(self, state: SlackState, validation_failures: list[ValidationFailure]) -> None:
        self.state = state
        self.validation_failures = validation_failures  # shared with the FakeSlack
        self._urls: dict[str, _ResponseUrl] = {}
        self._keys = itertools.count(1)

    def mint(self, *, channel: str | None, ts: str | None) -> str:
        """A new key, served at ``/response/<key>``."""
        key = f"R{next(self._keys):08d}"
        self._urls[key] = _ResponseUrl(channel=channel, ts=ts)
        return key

    def posts(self, url: str | None = None) -> list[ResponseUrlPost]:
        """Posts made to ``url`` (or to every minted URL)."""
        keys = [url.rsplit("/", 1)[-1]] if url else list(self._urls)
        return [post for key in keys for post in self._urls[key].posts]

    async def handle(self, request: web.Request) -> web.Response:
        """``POST /response/{key}``."""
        key = request.match_info["key"]
        target = self._urls.get(key)
        if target is None:
            return web.Response(status=404, text="no_service")
        try:
            body = json.loads(await request.text() or "{}")
        except json.JSONDecodeError:
            body = {}
            status, reply = 400, "invalid_payload"
        else:
            status, reply = self._apply(target, body)
        target.posts.append(ResponseUrlPost(key=key, body=body, status=status))
        if status != 200:
            return web.Response(status=status, text=reply)
        return web.json_response({"ok": True})

    def _apply(self, target: _ResponseUrl, body: dict[str, Any]) -> tuple[int, str]:
        # Slack allows 5 uses in 30 minutes; after that the URL stops working.
        target.uses += 1
        if target.uses > RESPONSE_URL_USES:
            return 404, "used_url"
        if "blocks" in body:
            errors = check_message(body["blocks"])
            if errors:
                self.validation_failures.append(ValidationFailure("response_url", errors, body))
                return 400, "invalid_blocks"
        if target.channel and target.ts:
            if body.get("delete_original"):
                self.state.delete_message(target.channel, target.ts)
            elif body.get("replace_original"):
                self.state.update_message(target.channel, target.ts, body)
        return 200, "ok"
