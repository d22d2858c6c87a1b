"""A running Signoff (engine + aiohttp app over real HTTP) wired to a FakeSlack, for tests.

``make_bot(**settings)`` builds one; ``bot`` is the default. Requests are built and signed
the way Slack sends them (``tests.fakes.signing``) and POSTed to ``/slack/events``.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot import Settings, create_web_app, posted_messages
from bot.server import SLACK_BOT
from bot.slack.app import SlackBot, attach_slack, make_client
from engine import Engine, Interrupt, Run, RunStatus, Workflow, open_store
from tests.e2e.wf_approvals import WORKFLOWS
from tests.fakes.signing import (
    block_actions_payload,
    interactive_body,
    signed_request,
    slash_command_body,
    view_submission_payload,
)
from tests.fakes.slack_api import FakeSlack, StoredMessage
from tests.support.polling import eventually

__all__ = [
    "ADMIN",
    "CHANNEL",
    "SECRET",
    "USERS",
    "Bot",
    "Reply",
    "bot",
    "eventually",
    "make_bot",
    "settings_for",
]

SECRET = "test-signing-secret-0123456789"
CHANNEL = "C0APPROVALS"
ADMIN = "U0ADMIN"
USERS = ("U0ALICE", "U0BOB", "U0CAROL", "U0DAVE", "U0ERIN", ADMIN) + tuple(
    f"U0CLICK{n:02d}" for n in range(20)
)


def settings_for(fake: FakeSlack, **overrides: Any) -> Settings:
    """Settings pointing at ``fake``; overrides use the environment variable names."""
    values: dict[str, Any] = {
        "SLACK_BOT_TOKEN": fake.token,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": fake.api_url,
        "SIGNOFF_DEFAULT_CHANNEL": CHANNEL,
        "SIGNOFF_ADMINS": ADMIN,
        "SIGNOFF_DATABASE_URL": "sqlite:///unused.db",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass
class Reply:
    """An HTTP answer from the app, and how long it took."""

    status: int
    text: str
    elapsed: float

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.text)


@dataclass
class Bot:
    """A running Signoff with helpers to act like Slack and its users."""

    engine: Engine
    fake: FakeSlack
    settings: Settings
    url: str
    http: aiohttp.ClientSession
    secret: str = SECRET
    replies: list[Reply] = field(default_factory=list)

    @property
    def slack(self) -> SlackBot:
        """The attached Slack adapter."""
        return self._slack

    async def send(self, body: str, **sign: Any) -> Reply:
        """POST a signed body to /slack/events (``sign`` goes to ``signed_request``)."""
        request = signed_request(body, secret=self.secret, **sign)
        started = time.monotonic()
        async with self.http.post(
            f"{self.url}/slack/events", data=request.body, headers=request.headers
        ) as response:
            text = await response.text()
        reply = Reply(response.status, text, time.monotonic() - started)
        self.replies.append(reply)
        return reply

    async def command(self, text: str, *, user: str = "U0ALICE", **kwargs: Any) -> Reply:
        """Type ``/signoff <text>`` as ``user``."""
        kwargs.setdefault("response_url", self.fake.response_url())
        body = slash_command_body(
            command=self.settings.slash_command, text=text, user_id=user, **kwargs
        )
        return await self.send(body)

    async def start(
        self, workflow: str | Workflow, data: Any, *, requester: str | None = "U0CAROL"
    ) -> str:
        """Start a run directly on the engine and wait until it parks or ends."""
        run_id = await self.engine.start(workflow, data, requester=requester)
        await self.engine.wait(run_id, timeout=10)
        return run_id

    async def interrupt(self, run_id: str) -> Interrupt:
        """The run's only (or first) interrupt, as stored now."""
        detail = await self.engine.get_run(run_id)
        assert detail.interrupts, f"run {run_id} has no interrupt"
        return detail.interrupts[0]

    async def posted(self, run_id: str, *, count: int = 1) -> list[StoredMessage]:
        """Wait until the run's first interrupt has ``count`` Slack messages; return them."""

        async def check() -> list[StoredMessage] | None:
            detail = await self.engine.get_run(run_id)
            if not detail.interrupts:  # not suspended yet
                return None
            found = posted_messages(detail.interrupts[0])
            if len(found) < count:
                return None
            return [self.fake.message(p.channel, p.ts) for p in found]

        result: list[StoredMessage] = await eventually(check, what=f"{count} post(s) of {run_id}")
        return result

    async def message(self, run_id: str) -> StoredMessage:
        """The (single) Slack message of the run's first interrupt."""
        return (await self.posted(run_id))[0]

    async def click(
        self,
        message: StoredMessage,
        action_id: str,
        *,
        user: str = "U0ALICE",
        selected: str | None = None,
        edit: Callable[[dict[str, Any]], None] | None = None,
    ) -> Reply:
        """Click ``action_id`` in ``message`` as ``user`` (``edit`` may alter the payload)."""
        payload = block_actions_payload(
            message=message.to_api(),
            action_id=action_id,
            channel_id=message.channel,
            user_id=user,
            user_name=user.lower(),
            selected=selected,
            response_url=self.fake.response_url(channel=message.channel, ts=message.ts),
        )
        if edit is not None:
            edit(payload)
        return await self.send(interactive_body(payload))

    async def submit(
        self,
        view: Mapping[str, Any],
        answers: Mapping[str, Any],
        *,
        user: str = "U0ALICE",
        edit: Callable[[dict[str, Any]], None] | None = None,
    ) -> Reply:
        """Submit an opened modal ``view`` with ``answers`` (by block id) as ``user``."""
        payload = view_submission_payload(
            view=view, answers=answers, user_id=user, user_name=user.lower()
        )
        if edit is not None:
            edit(payload)
        return await self.send(interactive_body(payload))

    def ephemerals(self, user: str) -> list[str]:
        """Texts of the ephemeral messages sent to ``user`` so far."""
        return [str(e.get("text")) for e in self.fake.ephemerals if e.get("user") == user]

    async def ephemeral(self, user: str, *, count: int = 1) -> str:
        """Wait for ``user``'s ``count``-th ephemeral message and return its text."""
        found: list[str] = await eventually(
            lambda: len(self.ephemerals(user)) >= count and self.ephemerals(user),
            what=f"ephemeral #{count} for {user}",
        )
        return found[count - 1]

    async def finished(self, run_id: str) -> Run:
        """Wait until the run reaches a terminal status."""
        terminal = [s for s in RunStatus if s.terminal]
        return await self.engine.wait(run_id, until=terminal, timeout=10)

    async def thread_replies(self, message: StoredMessage, *, count: int = 1) -> list[str]:
        """Wait for ``count`` replies in ``message``'s thread; return their texts."""

        def replies() -> list[str]:
            return [
                m.text or ""
                for m in self.fake.messages(message.channel)
                if m.thread_ts == message.ts
            ]

        found: list[str] = await eventually(
            lambda: len(replies()) >= count and replies(), what=f"{count} thread replies"
        )
        return found

    _slack: SlackBot = field(init=False, repr=False)


BotFactory = Callable[..., Awaitable[Bot]]


@pytest.fixture
async def make_bot(fake_slack: FakeSlack, tmp_path: Path) -> AsyncIterator[BotFactory]:
    """Build a running Signoff on a fresh SQLite file: ``await make_bot(SIGNOFF_X=...)``."""
    for user in USERS:
        fake_slack.add_user(user, name=user.lower())
    cleanups: list[Callable[[], Awaitable[None]]] = []
    built = 0

    async def build(
        *,
        workflows: list[Workflow] | None = None,
        session: aiohttp.ClientSession | None = None,
        **overrides: Any,
    ) -> Bot:
        """``session``: the Web API client's long-lived session, as ``signoff serve`` has."""
        nonlocal built
        built += 1
        settings = settings_for(fake_slack, **overrides)
        # A file per bot: two bots sharing one would each deliver the other's outbox
        # messages under their own settings (the same subscriber names claim them).
        engine = Engine(
            open_store(str(tmp_path / f"signoff-{built}.db")),
            workflows=WORKFLOWS if workflows is None else workflows,
            poll_interval=0.05,
            lease=2.0,
        )
        slack = None
        if session is not None:
            slack = attach_slack(engine, settings, client=make_client(settings, session=session))
        web_app = create_web_app(engine, settings, slack=slack)  # subscribes the notifier first
        await engine.start_background()
        server = TestServer(web_app, host="127.0.0.1", port=None)
        await server.start_server()
        http = aiohttp.ClientSession()

        async def close() -> None:
            await http.close()
            await server.close()
            await engine.close(grace=1.0)

        cleanups.append(close)
        url = str(server.make_url("")).rstrip("/")
        made = Bot(engine=engine, fake=fake_slack, settings=settings, url=url, http=http)
        made._slack = web_app[SLACK_BOT]
        return made

    yield build
    for close in reversed(cleanups):
        await close()


@pytest.fixture
async def bot(make_bot: BotFactory) -> Bot:
    """A running Signoff with the test workflows and default settings."""
    return await make_bot()
