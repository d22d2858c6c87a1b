"""A faithful fake of the Slack Web API, served over real HTTP on 127.0.0.1.

Point slack-sdk at it with ``AsyncWebClient(token=fake.token, base_url=fake.api_url)`` (or
``fake.client()``). It answers the methods Signoff uses in Slack's shapes, records every
call with its full arguments, keeps the posted messages and opened views, validates every
message and view like Slack (see ``tests.fakes.blockkit``), and can be told to fail::

    async with FakeSlack() as fake:
        fake.add_user("U0ALICE", name="alice")
        fake.fail_next("chat.postMessage", Failure.rate_limited(retry_after=1))
        ...
        assert fake.calls("chat.postMessage")[-1].args["channel"] == "C0APPROVALS"

Arguments are read from the query string, a JSON body and a form body alike, since
slack-sdk uses all three (slack-facts §3.1). The token may come as ``Authorization: Bearer``
or a ``token`` argument.

Like a real workspace, the fake only knows the users it was told about: register them with
``add_user`` before DMing them (``chat.postMessage`` to ``U…``), ``conversations.open``,
``chat.postEphemeral`` or ``users.info``. Channels are any ``C…``/``G…``/``D…`` id.

Beyond posting and modals:

* Message ``metadata`` (``{"event_type": str, "event_payload": {...}}``) is checked and kept
  by chat.postMessage / chat.update, and ``conversations.history`` / ``conversations.replies``
  read the channel and its threads back (``tests.fakes.history``); ``settled_at(channel, ts)``
  tells when a message last changed.
* ``views.publish`` keeps each user's Home tab (``home_view(user_id)``), checked by
  ``blockkit.check_home_view``.
* Rate limits are not enforced unless asked: ``FakeSlack(limits=SlackLimits(...))`` or
  ``fake.enforce_limits(...)`` answers 429 + ``Retry-After`` past Slack's tiers and
  chat.postMessage's per-channel and workspace limits (``tests.fakes.ratelimits``);
  ``rate_limit_hits`` counts the 429s by method.
* Sign in with Slack (``tests.fakes.oidc``): ``add_oidc_client``, a consent page at
  ``oidc_authorize_url`` (or ``oidc_auto_login``), ``openid.connect.token`` and
  ``openid.connect.userInfo``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.blockkit import check_home_view, check_message, check_view
from tests.fakes.history import check_metadata, conversations_history, conversations_replies
from tests.fakes.oidc import AUTHORIZE_PATH, OIDC_METHODS, FakeOidc
from tests.fakes.ratelimits import RateLimiter, SlackLimits
from tests.fakes.response_urls import RESPONSE_URL_USES, ResponseUrls
from tests.fakes.slack_state import ApiError, SlackState, StoredMessage
from tests.fakes.wire import (
    Call,
    Failure,
    Injections,
    ResponseUrlPost,
    ValidationFailure,
    client_address,
    read_args,
    read_basic_auth,
    read_token,
)

__all__ = [
    "Call",
    "FakeSlack",
    "Failure",
    "RESPONSE_URL_USES",
    "ResponseUrlPost",
    "SlackLimits",
    "StoredMessage",
    "ValidationFailure",
]

ACCEPT_QUEUE = 1024  # connections the kernel queues for accept(), as Signoff itself does

MESSAGE_TEXT_MAX = 40_000


Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class FakeSlack:
    """The fake Slack Web API server. Use as ``async with FakeSlack() as fake`` or start/stop."""

    def __init__(
        self,
        *,
        token: str = "xoxb-fake-bot-token",
        team_id: str = "T0FAKE",
        team: str = "Fake Team",
        bot_user_id: str = "U0SIGNOFF",
        bot_id: str = "B0SIGNOFF",
        app_id: str = "A0SIGNOFF",
        scopes: str = "chat:write,commands,im:write,users:read,usergroups:read",
        limits: SlackLimits | None = None,
    ) -> None:
        self.token = token
        self.valid_tokens = {token}
        self.scopes = scopes
        self.state = SlackState(
            team_id=team_id, team=team, bot_user_id=bot_user_id, bot_id=bot_id, app_id=app_id
        )
        self.records: list[Call] = []
        self.validation_failures: list[ValidationFailure] = []
        self._injections = Injections()
        self._delays: dict[str, float] = {}
        self._response_urls = ResponseUrls(self.state, self.validation_failures)
        self._runner: web.AppRunner | None = None
        self._url = ""
        self.limiter = RateLimiter(limits) if limits is not None else None
        self.oidc = FakeOidc(self.state)
        self._handlers: dict[str, Handler] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "conversations.open": self._conversations_open,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "users.info": self._users_info,
            "usergroups.users.list": self._usergroups_users_list,
        }

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Serve on 127.0.0.1 on a free port."""
        app = web.Application()
        app.router.add_post("/response/{key}", self._response_urls.handle)
        self.oidc.add_routes(app)
        app.router.add_route("*", "/api/{method}", self._handle_api)
        # bolt's own tests use a base_url without /api/; accept that too.
        app.router.add_route("*", r"/{method:[A-Za-z]+\.[A-Za-z.]+}", self._handle_api)
        runner = web.AppRunner(app, handler_cancellation=True)  # as aiohttp's TestServer
        await runner.setup()
        # Slack accepts any number of connections at once. aiohttp's default accept queue
        # (128) overflows when a burst opens a client's whole pool (100 connections) while
        # this process is busy: the kernel drops those SYNs and the client's connect waits
        # for the 1 s retransmission, a delay real Slack would not add.
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=ACCEPT_QUEUE)
        await site.start()
        host, port = runner.addresses[0][:2]
        self._runner, self._url = runner, f"http://{host}:{port}"

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSlack:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, without a trailing slash."""
        if self._runner is None:
            raise RuntimeError("FakeSlack is not started")
        return self._url

    @property
    def api_url(self) -> str:
        """The ``base_url`` for slack-sdk clients: ``<url>/api/``."""
        return self.url + "/api/"

    def client(self, **kwargs: Any) -> AsyncWebClient:
        """An ``AsyncWebClient`` wired to this fake with the valid bot token."""
        kwargs.setdefault("token", self.token)
        return AsyncWebClient(base_url=self.api_url, **kwargs)

    # -- test configuration ----------------------------------------------------------------

    def add_user(self, user_id: str, **fields: Any) -> dict[str, Any]:
        """Register a user for users.info, DMs and conversations.open; returns its object."""
        return self.state.add_user(user_id, **fields)

    def set_usergroup(self, usergroup_id: str, members: list[str]) -> None:
        """Set the members usergroups.users.list returns for ``usergroup_id`` (``S…``)."""
        self.state.usergroups[usergroup_id] = list(members)

    def fail_next(self, method: str, failure: Failure, *, times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` fail with ``failure``."""
        self._injections.add(method, failure, times)

    def enforce_limits(self, limits: SlackLimits | None = None) -> RateLimiter:
        """Answer 429 past Slack's rate limits from now on (``SlackLimits()`` by default)."""
        self.limiter = RateLimiter(limits or SlackLimits())
        return self.limiter

    def lift_limits(self) -> None:
        """Stop enforcing rate limits (the default)."""
        self.limiter = None

    @property
    def rate_limit_hits(self) -> Counter[str]:
        """429s the enforced limits sent, by method (injected failures not included)."""
        return Counter(self.limiter.refused) if self.limiter else Counter()

    def add_oidc_client(self, client_id: str, client_secret: str, redirect_uris: list[str]) -> None:
        """Register a Sign in with Slack client for ``oidc_authorize_url`` and the token call."""
        self.oidc.add_client(client_id, client_secret, redirect_uris)

    def oidc_auto_login(self, user_id: str | None) -> None:
        """Make the authorize page sign ``user_id`` in at once (None: show the page again)."""
        self.oidc.auto_login = user_id

    @property
    def oidc_authorize_url(self) -> str:
        """Where Sign in with Slack starts (``authorization_url=`` for slack-sdk's generator)."""
        return self.url + AUTHORIZE_PATH

    def add_method(self, method: str, handler: Handler) -> None:
        """Answer ``method`` (e.g. ``apps.connections.open``) with ``await handler(args)``."""
        self._handlers[method] = handler

    def slow_down(self, method: str, seconds: float) -> None:
        """Make every later call of ``method`` take ``seconds`` before it is answered."""
        self._delays[method] = seconds

    def expire_trigger(self, trigger_id: str) -> None:
        """Make views.open/push with ``trigger_id`` answer ``expired_trigger_id``."""
        self.state.expired_triggers.add(trigger_id)

    def response_url(self, *, channel: str | None = None, ts: str | None = None) -> str:
        """Mint a ``response_url``; bound to a stored message, ``replace_original`` edits it."""
        key = self._response_urls.mint(channel=channel, ts=ts)
        return f"{self.url}/response/{key}"

    # -- inspection ------------------------------------------------------------------------

    def calls(self, method: str | None = None) -> list[Call]:
        """Every call received, or those of ``method``, oldest first."""
        return [c for c in self.records if method is None or c.method == method]

    def last_call(self, method: str) -> Call:
        """The most recent call of ``method`` (``AssertionError`` if none)."""
        found = self.calls(method)
        assert found, f"no {method} call was made"
        return found[-1]

    def messages(self, channel: str) -> list[StoredMessage]:
        """Messages currently in ``channel`` (a DM posted to ``U…`` lives in its ``D…``)."""
        return list(self.state.messages.get(channel, {}).values())

    def message(self, channel: str, ts: str) -> StoredMessage:
        """The stored message at ``(channel, ts)`` (``KeyError`` if none)."""
        return self.state.messages[channel][ts]

    def settled_at(self, channel: str, ts: str) -> float:
        """``time.monotonic()`` when the message at ``(channel, ts)`` last changed."""
        return self.state.messages[channel][ts].settled_at

    def home_view(self, user_id: str) -> dict[str, Any] | None:
        """The Home tab last published for ``user_id`` with views.publish (None if never)."""
        return self.state.home_views.get(user_id)

    def views(self) -> dict[str, dict[str, Any]]:
        """Open views by id, as last opened/updated."""
        return dict(self.state.views)

    def response_url_posts(self, url: str | None = None) -> list[ResponseUrlPost]:
        """Posts made to ``url`` (or to every minted response_url)."""
        return self._response_urls.posts(url)

    @property
    def ephemerals(self) -> list[dict[str, Any]]:
        """Ephemeral messages sent with chat.postEphemeral."""
        return self.state.ephemerals

    # -- HTTP ------------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        body = await request.text()
        received_at = time.monotonic()
        status = 200
        payload: dict[str, Any] = {}
        headers: dict[str, str] = {}
        args: dict[str, Any] = {}
        token: str | None = None
        try:
            args = read_args(request, body)
            token = read_token(request, args)
            basic = read_basic_auth(request)
            status, payload, headers = await self._dispatch(method, args, token, basic)
        except ApiError as exc:
            status, payload = exc.status, {"ok": False, "error": exc.error, **exc.extra}
        self.records.append(
            Call(
                method,
                args,
                request.method,
                request.content_type,
                body,
                token,
                status,
                payload,
                received_at,
                client_address(request),
            )
        )
        return web.json_response(payload, status=status, headers=headers)

    async def _dispatch(
        self, method: str, args: dict[str, Any], token: str | None, basic: tuple[str, str] | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if self._delays.get(method):
            await asyncio.sleep(self._delays[method])
        injected = self._injections.take(method)
        if injected is not None:
            if injected.applied and token in self.valid_tokens and method in self._handlers:
                await self._handlers[method](args)
            headers = {}
            if injected.retry_after is not None:
                headers["Retry-After"] = str(injected.retry_after)
            return injected.status, {"ok": False, "error": injected.error}, headers
        if method in OIDC_METHODS:  # client credentials or a Sign in with Slack token
            return 200, self.oidc.call(method, args, basic, token), {}
        if not token:
            raise ApiError("not_authed")
        if token in self.oidc.access_tokens:
            raise ApiError("missing_scope")  # a Sign in with Slack token is openid-only
        if token not in self.valid_tokens:
            raise ApiError("invalid_auth")
        handler = self._handlers.get(method)
        if handler is None:
            raise ApiError("unknown_method")
        if self.limiter is not None:
            retry_after = self.limiter.admit(method, self._limited_channel(method, args))
            if retry_after is not None:
                headers = {"Retry-After": str(retry_after)}
                return 429, {"ok": False, "error": "ratelimited"}, headers
        headers = {"x-oauth-scopes": self.scopes} if method == "auth.test" else {}
        return 200, await handler(args), headers

    def _limited_channel(self, method: str, args: dict[str, Any]) -> str | None:
        # chat.postMessage is limited per channel; a DM to U… and its D… id are one channel.
        if method != "chat.postMessage":
            return None
        try:
            return self.state.resolve_channel(args.get("channel"))
        except ApiError:
            return str(args.get("channel") or "") or None

    # -- methods ---------------------------------------------------------------------------

    async def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return self.state.auth_test()

    def _check_message_args(self, method: str, args: dict[str, Any]) -> None:
        text = args.get("text")
        if isinstance(text, str) and len(text) > MESSAGE_TEXT_MAX:
            raise ApiError("msg_too_long")
        if "blocks" in args:
            errors = check_message(args["blocks"], text=text)
            if errors:
                self.validation_failures.append(ValidationFailure(method, errors, args))
                raise ApiError("invalid_blocks", response_metadata={"messages": errors})
        check_metadata(args.get("metadata"))

    async def _chat_post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self.state.resolve_channel(args.get("channel"))
        if not (args.get("text") or args.get("blocks") or args.get("attachments")):
            raise ApiError("no_text")
        self._check_message_args("chat.postMessage", args)
        message = self.state.post_message(channel, args)
        return {"ok": True, "channel": channel, "ts": message.ts, "message": message.to_api()}

    async def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(args.get("channel") or ""), str(args.get("ts") or "")
        if channel[:1] in ("U", "W"):
            raise ApiError("channel_not_found")  # chat.update needs the D… id, not a user id
        if ts not in self.state.messages.get(channel, {}):
            raise ApiError("message_not_found")
        self._check_message_args("chat.update", args)
        message = self.state.update_message(channel, ts, args)
        return {
            "ok": True,
            "channel": channel,
            "ts": ts,
            "text": message.text,
            "message": message.to_api(),
        }

    async def _chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(args.get("channel") or ""), str(args.get("ts") or "")
        if ts not in self.state.messages.get(channel, {}):
            raise ApiError("message_not_found")
        self.state.delete_message(channel, ts)
        return {"ok": True, "channel": channel, "ts": ts}

    async def _chat_post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self.state.resolve_channel(args.get("channel"))
        if str(args.get("user") or "") not in self.state.users:
            raise ApiError("user_not_in_channel")
        self._check_message_args("chat.postEphemeral", args)
        return {"ok": True, "message_ts": self.state.post_ephemeral(channel, args)}

    def _checked_view(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        view = args.get("view")
        errors = check_view(view)
        if errors:
            self.validation_failures.append(ValidationFailure(method, errors, args))
            raise ApiError("invalid_arguments", response_metadata={"messages": errors})
        assert isinstance(view, dict)
        return view

    async def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        self.state.use_trigger(args.get("trigger_id"))
        view = self._checked_view("views.open", args)
        return {"ok": True, "view": self.state.open_view(view)}

    async def _views_push(self, args: dict[str, Any]) -> dict[str, Any]:
        self.state.use_trigger(args.get("trigger_id"))
        view = self._checked_view("views.push", args)
        return {"ok": True, "view": self.state.push_view(view)}

    async def _views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        view = self._checked_view("views.update", args)
        return {"ok": True, "view": self.state.update_view(view, args)}

    async def _views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        view = args.get("view")
        errors = check_home_view(view)
        if errors:
            self.validation_failures.append(ValidationFailure("views.publish", errors, args))
            raise ApiError("invalid_arguments", response_metadata={"messages": errors})
        assert isinstance(view, dict)
        user_id = str(args.get("user_id") or "")
        return {"ok": True, "view": self.state.publish_home(user_id, view, args.get("hash"))}

    async def _conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        return conversations_history(self.state, args)

    async def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        return conversations_replies(self.state, args)

    async def _conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, **self.state.open_conversation(args)}

    async def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self.state.users.get(str(args.get("user") or ""))
        if user is None:
            raise ApiError("user_not_found")
        return {"ok": True, "user": user}

    async def _usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        members = self.state.usergroups.get(str(args.get("usergroup") or ""))
        if members is None:
            raise ApiError("no_such_subteam")
        return {"ok": True, "users": list(members)}
