"""A running Signoff with its web console, and a cookie-keeping HTTP "browser" for it.

``make_site(**settings)`` builds one in-process (engine + aiohttp app on 127.0.0.1 + the
FakeSlack with a Sign in with Slack client registered for it); ``site.browser()`` is a
fresh client with its own cookies, and ``await browser.sign_in("U0ALICE")`` goes through
the fake's authorize endpoint and the console's callback, as a real browser would.
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot import create_web_app
from bot.server import SLACK_BOT
from bot.web.console import CONSOLE, Console
from engine import Engine, Workflow, open_store
from tests.e2e.wf_approvals import WORKFLOWS
from tests.fakes.slack_api import FakeSlack
from tests.support.slack_bot import USERS, Bot, settings_for

__all__ = [
    "OIDC_CLIENT_ID",
    "OIDC_SECRET",
    "SESSION_SECRET",
    "Browser",
    "Page",
    "Site",
    "csrf_of",
    "make_site",
]

OIDC_CLIENT_ID, OIDC_SECRET = "4444.5555", "oidc-client-secret"
SESSION_SECRET = "console-test-session-secret"
CALLBACK = "/signin/slack/callback"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(page: str) -> str:
    """The CSRF token in a console page's forms."""
    found = _CSRF.search(page)
    assert found, "no CSRF token on the page"
    return html.unescape(found.group(1))


@dataclass
class Page:
    """One HTTP answer from the console."""

    status: int
    text: str
    url: str

    @property
    def csrf(self) -> str:
        """The page's CSRF token."""
        return csrf_of(self.text)


@dataclass
class Browser:
    """An HTTP client with its own cookie jar, like one browser profile."""

    base: str
    fake: FakeSlack
    http: aiohttp.ClientSession

    async def get(self, path: str, **kwargs: Any) -> Page:
        """GET a console path (redirects followed unless ``allow_redirects=False``)."""
        async with self.http.get(self.base + path, **kwargs) as response:
            return Page(response.status, await response.text(), str(response.url))

    async def post(self, path: str, data: dict[str, Any], **kwargs: Any) -> Page:
        """POST a form to a console path."""
        async with self.http.post(self.base + path, data=data, **kwargs) as response:
            return Page(response.status, await response.text(), str(response.url))

    async def sign_in(self, user: str) -> Page:
        """Sign in with (fake) Slack as ``user``; the page landed on (the inbox)."""
        self.fake.oidc_auto_login(user)
        try:
            return await self.get("/signin/slack")
        finally:
            self.fake.oidc_auto_login(None)

    async def csrf(self) -> str:
        """A CSRF token of this browser's session (from the sign-in page)."""
        return (await self.get("/signin")).csrf


@dataclass
class Site:
    """A running Signoff with the console; ``bot`` has the Slack-side helpers."""

    bot: Bot
    app: web.Application
    browsers: list[Browser] = field(default_factory=list)

    @property
    def console(self) -> Console:
        """The console's handlers (operator links, sign-in)."""
        return self.app[CONSOLE]

    @property
    def url(self) -> str:
        """The site's base URL."""
        return self.bot.url

    async def browser(self) -> Browser:
        """A new browser (empty cookie jar; IP-address cookies allowed, as browsers do)."""
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        made = Browser(self.url, self.bot.fake, http)
        self.browsers.append(made)
        return made


SiteFactory = Callable[..., Awaitable[Site]]


@pytest.fixture
async def make_site(fake_slack: FakeSlack, tmp_path: Path) -> AsyncIterator[SiteFactory]:
    """``await make_site(SIGNOFF_X=...)``: Signoff with the console, Slack sign-in on."""
    for user in USERS:
        if user not in fake_slack.state.users:
            fake_slack.add_user(user, name=user.lower())
    sites: list[tuple[Site, TestServer]] = []

    async def build(
        *, workflows: list[Workflow] | None = None, oidc: bool = True, **overrides: Any
    ) -> Site:
        values: dict[str, Any] = {"SIGNOFF_SESSION_SECRET": SESSION_SECRET}
        if oidc:
            values.update(
                SIGNOFF_OIDC_CLIENT_ID=OIDC_CLIENT_ID,
                SIGNOFF_OIDC_CLIENT_SECRET=OIDC_SECRET,
                SIGNOFF_OIDC_AUTHORIZE_URL=fake_slack.oidc_authorize_url,
            )
        values.update(overrides)
        settings = settings_for(fake_slack, **values)
        engine = Engine(
            open_store(str(tmp_path / f"console{len(sites)}.db")),
            workflows=WORKFLOWS if workflows is None else workflows,
            poll_interval=0.05,
            lease=2.0,
        )
        app = create_web_app(engine, settings)
        await engine.start_background()
        server = TestServer(app, host="127.0.0.1", port=None)
        await server.start_server()
        url = str(server.make_url("")).rstrip("/")
        fake_slack.add_oidc_client(OIDC_CLIENT_ID, OIDC_SECRET, redirect_uris=[url + CALLBACK])
        bot = Bot(engine=engine, fake=fake_slack, settings=settings, url=url,
                  http=aiohttp.ClientSession())  # fmt: skip
        bot._slack = app[SLACK_BOT]
        site = Site(bot=bot, app=app)
        sites.append((site, server))
        return site

    yield build
    for site, server in reversed(sites):
        for browser in site.browsers:
            await browser.http.close()
        await site.bot.http.close()
        await server.close()
        await site.bot.engine.close(grace=1.0)
