"""The console's routes: pages, answering, cancelling, the live stream, sign-in and out.

Every page needs a session (``/signin`` otherwise); every POST needs the session's CSRF
token (403 without it) before anything else is read or changed. Answers go through
``engine.resume(..., actor=<the signed-in Slack user>)`` exactly as a Slack click does, so
the engine's rules (responders, groups, no self-approval, quorum, exactly once) apply and
the Slack message is updated by the notifier from the outbox.
"""

from __future__ import annotations

import datetime as dt
import functools
import hmac
import importlib.resources
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp_jinja2
import jinja2
from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from bot.errors import InvalidSubmission
from bot.settings import Settings
from bot.slack.app import SLACK_BOT
from bot.slack.authorization import UsergroupAuthorizer
from bot.web.console import queries
from bot.web.console.auth import (
    CSRF_FIELD,
    Identity,
    OperatorLinks,
    check_csrf,
    csrf_token,
    current_identity,
    get_session,
    is_admin,
    session_storage,
    sign_in,
    sign_out,
    with_session,
)
from bot.web.console.forms import DECISION_INPUT, WebForm, parse_answer, web_form
from bot.web.console.links import run_path
from bot.web.console.oidc import CALLBACK_PATH, SignInFailed, SlackSignIn
from bot.web.sse import install_streams, stream_events
from engine import (
    AlreadyResolved,
    DuplicateResponse,
    Engine,
    EventType,
    Interrupt,
    InterruptNotFound,
    InterruptStatus,
    NotAuthorized,
    ResumeValidationError,
    RunNotActive,
    RunNotFound,
    RunNotRetryable,
    RunStatus,
    SignoffError,
)

__all__ = ["CONSOLE", "LINK_PATH", "Console", "announce_console", "install_console"]

log = logging.getLogger("signoff.console")

LINK_PATH = "/signin/link"
_FLASH = "flash"
_ANSWER_VERBS = {"approved": "Approved", "rejected": "Rejected", "resolved": "Answered"}


def safe_next(value: Any) -> str:
    """A local path to go back to (anything else, e.g. ``//evil.example``, becomes ``/``)."""
    if isinstance(value, str) and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return "/"


def _when(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if value else ""


def _ago(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    seconds = (value - dt.datetime.now(dt.UTC)).total_seconds()
    future, seconds = seconds > 0, abs(seconds)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            amount = f"{int(seconds // size)} {unit}"
            return f"in {amount}" if future else f"{amount} ago"
    return "in a moment" if future else "just now"


@dataclass
class Rerender:
    """A form to show again (with errors or a notice) instead of an empty one."""

    interrupt_id: str
    form: WebForm | None
    notice: str | None = None


class Console:
    """The console's handlers, bound to one engine and its settings."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        authorizer: UsergroupAuthorizer | None,
        slack_sign_in: SlackSignIn | None,
        links: OperatorLinks | None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.authorizer = authorizer
        self.slack_sign_in = slack_sign_in
        self.links = links

    # -- plumbing ---------------------------------------------------------------------
    async def _identity(self, request: web.Request) -> Identity:
        identity = await current_identity(request)
        if identity is None:
            target = request.path_qs if request.method == "GET" else "/"
            raise web.HTTPFound(f"/signin?next={_quote(target)}")
        return identity

    async def _render(
        self,
        request: web.Request,
        template: str,
        context: dict[str, Any],
        *,
        status: int = 200,
        identity: Identity | None = None,
    ) -> web.Response:
        session = await get_session(request)
        flashes = session.pop(_FLASH, [])
        base = {
            "identity": identity,
            "csrf": csrf_token(session),
            "csrf_field": CSRF_FIELD,
            "decision_input": DECISION_INPUT,
            "flashes": flashes,
            "path": request.path_qs,
            "admin": identity is not None and is_admin(identity, self.settings),
            "when": _when,
            "ago": _ago,
            "run_path": run_path,
            "notice": None,
        }
        response = aiohttp_jinja2.render_template(
            template, request, {**base, **context}, status=status
        )
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    async def _flash(self, request: web.Request, kind: str, text: str) -> None:
        session = await get_session(request)
        session[_FLASH] = [*session.get(_FLASH, []), [kind, text]]

    async def _post(self, request: web.Request) -> tuple[Identity, MultiDictProxy[str]]:
        # Order matters: signed in, then the CSRF token, then anything else.
        identity = await current_identity(request)
        await check_csrf(request)
        if identity is None:
            raise web.HTTPFound("/signin")
        posted = await request.post()
        return identity, MultiDictProxy(
            MultiDict((k, v) for k, v in posted.items() if isinstance(v, str))
        )

    # -- inbox ------------------------------------------------------------------------
    async def inbox(
        self, request: web.Request, *, rerender: Rerender | None = None, status: int = 200
    ) -> web.Response:
        """``/``: what the signed-in person may answer now."""
        identity = await self._identity(request)
        cards, more = await queries.inbox(self.engine, identity, self.authorizer)
        cards = [self._rerendered(card, rerender) for card in cards]
        context = {"cards": cards, "more": more, "nav": "inbox", "notice": _notice(rerender)}
        return await self._render(request, "inbox.html", context, identity=identity, status=status)

    def _rerendered(self, card: queries.Pending, rerender: Rerender | None) -> queries.Pending:
        if rerender is None or rerender.interrupt_id != card.interrupt.id or rerender.form is None:
            return card
        return queries.Pending(
            card.interrupt, card.title, card.payload, rerender.form, card.approvers,
            card.reminders, card.links,
        )  # fmt: skip

    # -- answering --------------------------------------------------------------------
    async def answer(self, request: web.Request) -> web.Response:
        """POST ``/runs/{run_id}/answer``: resume one interrupt as the signed-in person."""
        identity, form = await self._post(request)
        run_id = request.match_info["run_id"]
        interrupt_id = form.get("interrupt_id", "")
        back = safe_next(form.get("next"))
        try:
            interrupt = await self.engine.get_interrupt(run_id, interrupt_id)
        except (RunNotFound, InterruptNotFound):
            return await self._error(request, 404, "There is no such request.", identity)
        try:
            if interrupt.status is not InterruptStatus.PENDING:
                raise AlreadyResolved(
                    run_id,
                    interrupt_id,
                    interrupt.status.value,
                    interrupt.resolved_by,
                    interrupt.resolved_at,
                )
            # Who may answer is checked before the answer is read: someone who may not
            # answer learns nothing about the form from its validation errors.
            await self.engine.check_authorized(interrupt, identity.user)
            model = self.engine.resume_model(interrupt)
            answer = parse_answer(model, form)
            outcome = await self.engine.resume(run_id, interrupt_id, answer, actor=identity.user)
        except NotAuthorized as exc:
            log.warning("console: %s may not answer %s/%s", identity.user, run_id, interrupt_id)
            return await self._error(request, 403, _not_allowed_text(interrupt, exc), identity)
        except InvalidSubmission as exc:
            shown = web_form(model, submitted=form, errors=exc.errors)
            return await self._back(request, back, run_id, Rerender(interrupt_id, shown), 422)
        except ResumeValidationError as exc:
            shown = web_form(model, submitted=form, errors=exc.errors)
            return await self._back(request, back, run_id, Rerender(interrupt_id, shown), 422)
        except AlreadyResolved as exc:
            notice = _already_text(exc)
            return await self._back(
                request, back, run_id, Rerender(interrupt_id, None, notice), 409
            )
        except DuplicateResponse as exc:
            notice = (
                "You already responded to this request; each person counts once "
                f"({exc.approvals} of {exc.needed} approvals so far)."
            )
            return await self._back(
                request, back, run_id, Rerender(interrupt_id, None, notice), 409
            )
        except SignoffError as exc:
            return await self._error(request, 409, str(exc), identity)
        title = interrupt.title or interrupt.step
        if outcome.resolved:
            verb = _ANSWER_VERBS.get(outcome.status.value, outcome.status.value.capitalize())
            await self._flash(request, "ok", f"{verb}: “{title}”. The run continues.")
        else:
            await self._flash(
                request,
                "ok",
                f"Your approval of “{title}” is recorded: {outcome.approvals} of "
                f"{outcome.needed} so far.",
            )
        log.info("console: %s answered %s/%s", identity.user, run_id, interrupt_id)
        raise web.HTTPSeeOther(back)

    async def _back(
        self, request: web.Request, back: str, run_id: str, rerender: Rerender, status: int
    ) -> web.Response:
        if back.split("?")[0] == run_path(run_id):
            return await self.run_detail(request, rerender=rerender, status=status)
        return await self.inbox(request, rerender=rerender, status=status)

    async def _error(
        self, request: web.Request, status: int, message: str, identity: Identity | None
    ) -> web.Response:
        context = {"status": status, "message": message, "nav": ""}
        return await self._render(request, "error.html", context, status=status, identity=identity)

    # -- runs -------------------------------------------------------------------------
    async def runs(self, request: web.Request) -> web.Response:
        """``/runs``: runs, newest first, filtered and keyset-paged."""
        identity = await self._identity(request)
        filters, problems = queries.RunFilters.parse(request.query)
        page = await queries.runs_page(self.engine, filters)
        context = {
            "nav": "runs",
            "filters": filters,
            "problems": problems,
            "page": page,
            "statuses": [s.value for s in RunStatus],
            "workflows": sorted({wf.name for wf in self.engine.registry.all()}),
            "next_query": (
                queries.older_query(filters, page.next_cursor) if page.next_cursor else None
            ),
            "newer_query": queries.newer_query(filters),
            "first_query": filters.query() if filters.before else None,
        }
        return await self._render(request, "runs.html", context, identity=identity)

    async def _run_context(
        self, identity: Identity, run_id: str, rerender: Rerender | None
    ) -> dict[str, Any]:
        detail = await self.engine.get_run(run_id)
        mine = {
            i.id
            for i in await queries.answerable(
                # Not limit=-1: with actor= the engine slices mine[:limit], which drops the last.
                self.engine,
                identity,
                self.authorizer,
                run_id=run_id,
                limit=1000,
            )
        }
        now = dt.datetime.now(dt.UTC)
        cards = [
            self._rerendered(
                queries.pending_card(self.engine, i, may_answer=i.id in mine, now=now), rerender
            )
            for i in detail.pending
        ]
        run = detail.run
        return {
            "run": run,
            "detail": detail,
            "cards": cards,
            "timeline": queries.timeline(detail.events, detail.interrupts),
            "input_rows": queries.labelled(run.input),
            "output_rows": queries.labelled(run.output),
            "steps": [(s, queries.labelled(s.output)) for s in detail.steps],
            "inputs": queries.step_inputs(self.engine, detail),
            "done": [i for i in detail.interrupts if not queries.is_pending(i)],
            "slack_links": queries.slack_links,
            "can_cancel": not run.status.terminal
            and (identity.user == run.requester or is_admin(identity, self.settings)),
            "can_retry": run.status is RunStatus.FAILED and is_admin(identity, self.settings),
            "notice": _notice(rerender),
            "last_event": detail.events[-1].id if detail.events else 0,
            "event_types": [t.value for t in EventType],
            "describe": queries.describe_value,
        }

    async def run_detail(
        self, request: web.Request, *, rerender: Rerender | None = None, status: int = 200
    ) -> web.Response:
        """``/runs/{run_id}``: status, pending requests, timeline, steps; live."""
        identity = await self._identity(request)
        run_id = request.match_info["run_id"]
        try:
            context = await self._run_context(identity, run_id, rerender)
        except RunNotFound:
            return await self._error(request, 404, f"There is no run {run_id[:80]}.", identity)
        context["nav"] = "runs"
        return await self._render(request, "run.html", context, identity=identity, status=status)

    async def run_live(self, request: web.Request) -> web.Response:
        """``/runs/{run_id}/live``: the parts of the run page that change, as a fragment."""
        identity = await current_identity(request)
        if identity is None:
            raise web.HTTPUnauthorized(text="sign in first")
        try:
            context = await self._run_context(identity, request.match_info["run_id"], None)
        except RunNotFound:
            raise web.HTTPNotFound(text="no such run") from None
        return await self._render(request, "run_live.html", context, identity=identity)

    async def run_events(self, request: web.Request) -> web.StreamResponse:
        """``/runs/{run_id}/events``: the run's history as Server-Sent Events (``sse.py``)."""
        if await current_identity(request) is None:
            raise web.HTTPUnauthorized(text="sign in first")
        after = 0
        for raw in (request.headers.get("Last-Event-ID", ""), request.query.get("after", "")):
            if raw.isdigit():
                after = max(after, int(raw))
        try:
            return await stream_events(
                request, self.engine, request.match_info["run_id"], after=after
            )
        except RunNotFound:
            raise web.HTTPNotFound(text="no such run") from None

    async def cancel(self, request: web.Request) -> web.Response:
        """POST ``/runs/{run_id}/cancel``: the requester or an admin cancels a run."""
        identity, form = await self._post(request)
        run_id = request.match_info["run_id"]
        run = await self.engine.find_run(run_id)
        if run is None:
            return await self._error(request, 404, "There is no such run.", identity)
        if identity.user != run.requester and not is_admin(identity, self.settings):
            return await self._error(
                request, 403, "Only the run's requester or an admin may cancel it.", identity
            )
        reason = form.get("reason", "").strip()[:500] or "cancelled from the console"
        try:
            await self.engine.cancel(run_id, reason=reason, actor=identity.user)
            await self._flash(request, "ok", "The run is cancelled.")
        except RunNotActive:
            await self._flash(request, "warn", "The run had already finished.")
        log.info("console: %s cancelled run %s", identity.user, run_id)
        raise web.HTTPSeeOther(run_path(run_id))

    async def retry(self, request: web.Request) -> web.Response:
        """POST ``/runs/{run_id}/retry``: an admin runs a failed run again from its failed
        step (``engine.retry``); the engine refuses anything but a failed run."""
        identity, _ = await self._post(request)
        run_id = request.match_info["run_id"]
        if not is_admin(identity, self.settings):
            return await self._error(request, 403, "Only an admin may retry a run.", identity)
        try:
            await self.engine.retry(run_id, actor=identity.user)
        except RunNotFound:
            return await self._error(request, 404, "There is no such run.", identity)
        except RunNotRetryable as exc:
            await self._flash(request, "warn", f"Not retried: {exc.reason}.")
        else:
            await self._flash(request, "ok", "The run is running again from its failed step.")
            log.info("console: %s retried run %s", identity.user, run_id)
        raise web.HTTPSeeOther(run_path(run_id))

    # -- workflows --------------------------------------------------------------------
    async def workflows(self, request: web.Request) -> web.Response:
        """``/workflows``: each definition's graph, schemas, versions and run counts."""
        identity = await self._identity(request)
        cards = await queries.workflow_cards(self.engine)
        context = {"nav": "workflows", "cards": cards}
        return await self._render(request, "workflows.html", context, identity=identity)

    # -- signing in and out -----------------------------------------------------------
    async def signin_page(
        self, request: web.Request, *, error: str | None = None, status: int = 200
    ) -> web.Response:
        """``/signin``: Sign in with Slack, or the operator's API token form."""
        context = {
            "nav": "",
            "error": error,
            "next": safe_next(request.query.get("next")),
            "slack": self.slack_sign_in is not None,
            "token_form": self.slack_sign_in is None and self.settings.api_token is not None,
            "operator_link": self.links is not None,
        }
        return await self._render(request, "signin.html", context, status=status)

    async def signin_slack(self, request: web.Request) -> web.Response:
        """``/signin/slack``: off to Slack's authorize page."""
        if self.slack_sign_in is None:
            raise web.HTTPNotFound(text="Sign in with Slack is not configured")
        raise await self.slack_sign_in.begin(request, safe_next(request.query.get("next")))

    async def signin_slack_callback(self, request: web.Request) -> web.Response:
        """``/signin/slack/callback``: Slack sends the browser back here."""
        if self.slack_sign_in is None:
            raise web.HTTPNotFound(text="Sign in with Slack is not configured")
        try:
            identity, back = await self.slack_sign_in.finish(request)
        except SignInFailed as exc:
            return await self.signin_page(request, error=str(exc), status=403)
        await sign_in(request, identity)
        raise web.HTTPFound(safe_next(back))

    async def signin_link(self, request: web.Request) -> web.Response:
        """``/signin/link?token=…``: the one-time operator link printed at start-up."""
        token = request.query.get("token", "")
        if self.links is None or not token or not self.links.redeem(token):
            message = "This sign-in link was already used, has expired, or is not valid."
            return await self.signin_page(request, error=message, status=403)
        name = self.settings.operator_name
        await sign_in(request, Identity(user=name, name=name, kind="operator"))
        raise web.HTTPFound("/")

    async def signin_token(self, request: web.Request) -> web.Response:
        """POST ``/signin/token``: sign in as the operator with ``SIGNOFF_API_TOKEN``."""
        await check_csrf(request)
        form = await request.post()
        given = form.get("token")
        expected = self.settings.api_token
        if (
            self.slack_sign_in is not None
            or expected is None
            or not isinstance(given, str)
            or not hmac.compare_digest(given.encode(), expected.get_secret_value().encode())
        ):
            log.warning("console: a wrong API token was entered")
            return await self.signin_page(request, error="That is not the API token.", status=403)
        name = self.settings.operator_name
        await sign_in(request, Identity(user=name, name=name, kind="operator"))
        raise web.HTTPSeeOther(safe_next(form.get("next")))

    async def signout(self, request: web.Request) -> web.Response:
        """POST ``/signout``: end the session."""
        await check_csrf(request)
        await sign_out(request)
        raise web.HTTPSeeOther("/signin")

    def routes(self) -> list[web.RouteDef]:
        """The console's routes."""
        return [
            web.get("/", self.inbox, name="console.inbox"),
            web.get("/runs", self.runs, name="console.runs"),
            web.get("/runs/{run_id}", self.run_detail, name="console.run"),
            web.get("/runs/{run_id}/live", self.run_live),
            web.get("/runs/{run_id}/events", self.run_events),
            web.post("/runs/{run_id}/answer", self.answer),
            web.post("/runs/{run_id}/cancel", self.cancel),
            web.post("/runs/{run_id}/retry", self.retry),
            web.get("/workflows", self.workflows, name="console.workflows"),
            web.get("/signin", self.signin_page),
            web.get("/signin/slack", self.signin_slack),
            web.get(CALLBACK_PATH, self.signin_slack_callback),
            web.get(LINK_PATH, self.signin_link),
            web.post("/signin/token", self.signin_token),
            web.post("/signout", self.signout),
        ]


def _quote(path: str) -> str:
    return quote(path, safe="/")


def _notice(rerender: Rerender | None) -> dict[str, str] | None:
    if rerender is None or rerender.notice is None:
        return None
    return {"interrupt_id": rerender.interrupt_id, "text": rerender.notice}


def _not_allowed_text(interrupt: Interrupt, error: NotAuthorized) -> str:
    # The Slack wording (compose.not_authorized_text) without Slack's markup.
    who = ", ".join(interrupt.responders) or "anyone in the channel"
    if interrupt.requester == error.actor and not interrupt.allow_requester:
        return f"You requested this, so you can't respond to it yourself. It needs {who}."
    return f"You can't respond to this request. Only {who} may respond."


def _already_text(exc: AlreadyResolved) -> str:
    when = f" at {_when(exc.resolved_at)}" if exc.resolved_at else ""
    if exc.status == "expired":
        return f"This request expired{when} without a decision. Nothing was changed."
    if exc.status == "cancelled":
        return f"This request was cancelled{when}. Nothing was changed."
    by = f" by {exc.resolved_by}" if exc.resolved_by else ""
    return f"Already decided ({exc.status}){by}{when}. Nothing was changed."


CONSOLE = web.AppKey("signoff.console", Console)
STATIC = __package__ or "bot.web.console"


def install_console(app: web.Application, engine: Engine, settings: Settings) -> None:
    """Serve the console at ``/`` (a route installer for ``bot.server.ROUTE_INSTALLERS``)."""
    slack = app.get(SLACK_BOT)
    sign_in_with_slack = None
    if settings.oidc_enabled and slack is not None:
        sign_in_with_slack = SlackSignIn(settings, slack.client)
    links = None
    if sign_in_with_slack is None:
        links = OperatorLinks(settings.operator_link_minutes * 60)
    console = Console(
        engine,
        settings,
        authorizer=slack.deps.authorizer if slack is not None else None,
        slack_sign_in=sign_in_with_slack,
        links=links,
    )
    app[CONSOLE] = console
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader(STATIC, "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
    )
    storage = functools.cache(lambda: session_storage(settings))
    app.router.add_routes(
        web.RouteDef(r.method, r.path, with_session(storage, r.handler), r.kwargs)
        for r in console.routes()
    )
    static = importlib.resources.files(STATIC) / "static"
    app.router.add_static("/static/", str(static), name="console.static")
    install_streams(app)


def announce_console(app: web.Application, base_url: str) -> None:
    """Say where the console is; without Slack sign-in, print a one-time operator link.

    Called by ``run_service`` once the server listens (the link needs the real port).
    """
    console = app.get(CONSOLE)
    if console is None:
        return
    base = console.settings.public_url or base_url.rstrip("/")
    if console.links is None:
        log.info("web console at %s/ (Sign in with Slack)", base)
        return
    minutes = console.settings.operator_link_minutes
    token = console.links.issue()
    log.warning(
        "web console sign-in link for %s (single use, valid %g minutes): %s%s?token=%s",
        console.settings.operator_name,
        minutes,
        base,
        LINK_PATH,
        token,
    )
