"""Requests on top of the engine: create (idempotent), view, wait for, list and cancel.

A request is a run of the built-in request workflow (``bot.requests.workflow``); its id is
the run id. Its status, answer, voters and receipt are read from the run and its one
interrupt, so whatever answers it (a Slack click, the runs API, the CLI) the view is the
same, on every instance.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import heapq
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from bot.client.models import (
    CallbackState,
    CreateRequest,
    ExpiryPolicy,
    QuorumProgress,
    Receipt,
    RequestList,
    RequestsQuery,
    RequestStatus,
    RequestView,
    Vote,
)
from bot.client.receipts import (
    RECEIPT_VERSION,
    canonical_json,
    digest_of,
    shown_of,
    sign_payload,
)
from bot.requests.schema import check_default, response_model, response_schema
from bot.requests.workflow import INTERRUPT_ID, REQUEST_WORKFLOW, RequestInput
from bot.web.problems import Problem
from bot.web.sse import cut_short
from engine import (
    Engine,
    IdempotencyKeyReused,
    Interrupt,
    InterruptNotFound,
    InterruptStatus,
    Run,
    RunNotFound,
    RunStatus,
)

__all__ = ["CALLBACK_REF", "RequestService", "status_of", "view_of"]

CALLBACK_REF = "callback"  # the interrupt ref where callback delivery state is kept
_BY_INTERRUPT = {
    InterruptStatus.APPROVED: RequestStatus.APPROVED,
    InterruptStatus.REJECTED: RequestStatus.REJECTED,
    InterruptStatus.RESOLVED: RequestStatus.ANSWERED,
    InterruptStatus.EXPIRED: RequestStatus.EXPIRED,
    InterruptStatus.CANCELLED: RequestStatus.CANCELLED,
}


def status_of(run: Run, interrupt: Interrupt | None) -> RequestStatus:
    """A request's status from its run and its interrupt (None: not asked yet)."""
    if interrupt is not None and interrupt.status is not InterruptStatus.PENDING:
        return _BY_INTERRUPT[interrupt.status]
    if run.status is RunStatus.CANCELLED:
        return RequestStatus.CANCELLED
    if run.status.terminal:
        return RequestStatus.FAILED
    return RequestStatus.PENDING


def _votes(interrupt: Interrupt | None) -> list[Vote]:
    if interrupt is None:
        return []
    return [
        Vote(
            actor=r.actor,
            approved=r.approved,
            answer=r.data if isinstance(r.data, dict) else None,
            at=r.at,
        )
        for r in interrupt.responses
    ]


def view_of(run: Run, interrupt: Interrupt | None, *, secret: SecretStr | None) -> RequestView:
    """The API view of a request (with a signed receipt once it is final)."""
    req = RequestInput.model_validate(run.input)
    status = status_of(run, interrupt)
    votes = _votes(interrupt)
    answer = None
    decided_by = decided_at = None
    if interrupt is not None and status.final:
        answer = interrupt.data if isinstance(interrupt.data, dict) else None
        decided_by, decided_at = interrupt.resolved_by, interrupt.resolved_at
    callback = None
    if req.callback_url:
        state = interrupt.refs.get(CALLBACK_REF) if interrupt is not None else None
        callback = CallbackState(url=req.callback_url, **(state or {}))
    view = RequestView(
        id=run.id,
        status=status,
        title=req.title,
        text=req.text,
        fields=req.fields,
        requester=run.requester,
        client=req.client,
        responders=req.responders,
        channel=req.channel,
        response_schema=req.response_schema,
        digest=req.digest,
        created_at=run.created_at,
        expires_at=interrupt.expires_at if interrupt is not None else None,
        expiry_action=req.expiry_action,
        expired=status is RequestStatus.EXPIRED,
        answer=answer,
        decided_by=decided_by,
        decided_at=decided_at,
        quorum=QuorumProgress(
            needed=req.quorum, approvals=sum(1 for v in votes if v.approved), voters=votes
        ),
        callback=callback,
        links=_links(run.id),
    )
    if status.final and status is not RequestStatus.FAILED:
        view.receipt = receipt_of(view, secret)
    return view


def receipt_of(view: RequestView, secret: SecretStr | None) -> Receipt:
    """The receipt binding what was shown (its digest) to the answer, voters and time."""
    shown = shown_of(view.title, view.text, view.fields, view.response_schema)
    content = {
        "version": RECEIPT_VERSION,
        "request_id": view.id,
        "status": view.status.value,
        "digest": view.digest,
        "shown": shown,
        "answer": view.answer,
        "responses": [v.model_dump(mode="json") for v in view.quorum.voters],
        "decided_by": view.decided_by,
        "decided_at": view.decided_at.isoformat() if view.decided_at else None,
        "client": view.client,
    }
    payload = canonical_json(content)
    signature = sign_payload(payload, secret.get_secret_value()) if secret else None
    return Receipt(payload=payload, signature=signature)


def _links(run_id: str) -> dict[str, str]:
    base = f"/api/requests/{run_id}"
    return {
        "self": base,
        "wait": f"{base}?wait=60",
        "cancel": f"{base}/cancel",
        "stream": f"{base}/stream",
        "run": f"/api/runs/{run_id}",
    }


def _expiry(body: CreateRequest) -> tuple[str | None, dict[str, Any] | None]:
    policy = body.on_expiry
    if policy is None:
        return None, None
    if isinstance(policy, ExpiryPolicy):
        return policy.action, policy.answer
    return policy, None


class RequestService:
    """Create, read, wait for, list and cancel requests on ``engine``.

    Args:
        engine: a started engine with the request workflow registered.
        callback_secret: signs receipts and callbacks (``whsec_...``); None: unsigned.
        callback_hosts: hosts callbacks may go to (empty: any).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        callback_secret: SecretStr | None = None,
        callback_hosts: list[str] | None = None,
        clock: Any = None,
    ) -> None:
        self.engine = engine
        self.secret = callback_secret
        self.callback_hosts = [h.lower() for h in callback_hosts or []]
        self.clock = clock or engine.clock

    # -- create -------------------------------------------------------------------
    def normalise(self, body: CreateRequest, *, client: str) -> RequestInput:
        """Check ``body`` (422 naming the field) and build the run's input."""
        schema = response_schema(body.response)
        model = response_model(schema, quorum=body.quorum)
        action, default = _expiry(body)
        if default is not None:
            default = check_default(model, default)
        expires_at = body.expires_at.timestamp() if body.expires_at is not None else None
        if expires_at is not None and expires_at <= self.clock():
            raise Problem(
                422, "invalid_body", "expires_at is in the past", errors={"expires_at": "past"}
            )
        if body.callback_url is not None:
            self._check_callback(body.callback_url)
        shown = shown_of(body.title, body.text, body.fields, schema)
        return RequestInput(
            title=body.title,
            text=body.text,
            fields=body.fields,
            requester=body.requester,
            channel=body.channel,
            responders=body.responders,
            quorum=body.quorum,
            allow_requester=body.allow_requester,
            expires_in=body.expires_in,
            expires_at=expires_at,
            expiry_action=action,
            expiry_answer=default,
            reminders=sorted(body.reminders),
            escalate=[step.model_dump() for step in sorted(body.escalate, key=lambda s: s.after)],
            response_schema=schema,
            callback_url=body.callback_url,
            client=client,
            digest=digest_of(shown),
        )

    def _check_callback(self, url: str) -> None:
        host = (urlsplit(url).hostname or "").lower()
        if self.callback_hosts and host not in self.callback_hosts:
            raise Problem(
                422,
                "callback_host_not_allowed",
                f"callback host {host!r} is not in SIGNOFF_CALLBACK_HOSTS",
                errors={"callback_url": "host not allowed"},
            )
        if self.secret is None:
            raise Problem(
                422,
                "callbacks_disabled",
                "callbacks need SIGNOFF_CALLBACK_SECRET on the server (they are signed)",
                errors={"callback_url": "no callback secret configured"},
            )

    async def create(
        self, body: CreateRequest, *, client: str, idempotency_key: str | None = None
    ) -> RequestView:
        """Create a request (or return the one this client's key created for this body).

        Raises:
            Problem: 422 for a response outside the subset, a bad expiry default, a
                callback host not allowed, or an idempotency key reused with another body.
        """
        data = self.normalise(body, client=client)
        key = None
        if idempotency_key is not None:
            key = f"{REQUEST_WORKFLOW}:{client}:{idempotency_key}"
        try:
            run, created = await self.engine.start_run(
                REQUEST_WORKFLOW,
                data.model_dump(mode="json"),
                requester=body.requester,
                idempotency_key=key,
            )
        except IdempotencyKeyReused as exc:
            raise Problem(
                422,
                "idempotency_key_reused",
                f"Idempotency-Key {idempotency_key!r} already created request {exc.run_id} "
                "with a different body; use a new key for a new request",
                request_id=exc.run_id,
            ) from None
        # A new run has not been asked yet (its step runs after this commit): nothing to
        # read. A replay shows the request as it is now.
        interrupt = None if created else await self._interrupt(run)
        return view_of(run, interrupt, secret=self.secret)

    # -- read ---------------------------------------------------------------------
    async def _run(self, request_id: str) -> Run:
        run = await self.engine.find_run(request_id)
        if run is None or run.workflow != REQUEST_WORKFLOW:
            raise Problem(404, "not_found", f"no request {request_id!r}")
        return run

    async def _interrupt(self, run: Run) -> Interrupt | None:
        with contextlib.suppress(InterruptNotFound, RunNotFound):
            return await self.engine.get_interrupt(run.id, INTERRUPT_ID)
        return None

    async def get(self, request_id: str) -> RequestView:
        """The request (404 if there is none)."""
        run = await self._run(request_id)
        return view_of(run, await self._interrupt(run), secret=self.secret)

    async def wait(
        self, request_id: str, seconds: float, *, closing: asyncio.Event | None = None
    ) -> RequestView:
        """The request once it is final, or as it is after ``seconds`` (or on shutdown).

        It is final as soon as its interrupt is decided (``Engine.wait_interrupt``), not
        when the run has gone on past it: the view reads status, answer, voters and
        receipt from the interrupt, so they are the same before and after.
        """
        run = await self._run(request_id)
        interrupt = await self._interrupt(run)
        view = view_of(run, interrupt, secret=self.secret)
        if view.status.final or seconds <= 0:
            return view
        decided: Interrupt | None = None
        try:
            async with asyncio.timeout(seconds + 1) as scope:
                with cut_short(scope, closing):  # the server shuts down: end the wait now
                    decided = await self.engine.wait_interrupt(
                        request_id, INTERRUPT_ID, timeout=seconds
                    )
        except (TimeoutError, InterruptNotFound, RunNotFound):
            pass  # still pending, shutting down, failed before it asked, or deleted
        if decided is None:
            return await self.get(request_id)
        # Decided: show the interrupt just read; only the run is read again.
        return view_of(await self._run(request_id), decided, secret=self.secret)

    async def list_page(self, query: RequestsQuery) -> RequestList:
        """Matching requests, newest first, a page at a time.

        Runs of the request workflow are read newest first with a keyset cursor (the
        engine's indexed ``before=``; requester and creation range filtered there too),
        and status and client, which live on the interrupt and the input, filtered here.
        Where a status implies the run's (a pending request's run is running or parked,
        a failed one's failed), only runs in those statuses are read, so listing what
        waits costs what waits, not every request ever decided.
        ``offset`` and ``next_offset`` count matching requests; ``next_cursor`` continues
        after the last request returned.
        """
        found: list[RequestView] = []
        skip = query.offset
        before = _decode_cursor(query.cursor)
        batch = min(500, max(50, 2 * (query.limit + skip)))
        while True:
            runs, more = await self._runs_newest_first(query, before, batch)
            for run in runs:
                before = (run.created_at, run.id)
                if query.client is not None and (run.input or {}).get("client") != query.client:
                    continue
                view = view_of(run, await self._interrupt(run), secret=self.secret)
                if query.status is not None and view.status is not query.status:
                    continue
                if skip:
                    skip -= 1
                    continue
                if len(found) == query.limit:  # one more exists: there is a next page
                    last = found[-1]
                    return RequestList(
                        requests=found,
                        limit=query.limit,
                        offset=query.offset,
                        next_offset=query.offset + len(found),
                        next_cursor=_encode_cursor(last.created_at, last.id),
                    )
                found.append(view)
            if not more:
                return RequestList(requests=found, limit=query.limit, offset=query.offset)

    async def _runs_newest_first(
        self, query: RequestsQuery, before: tuple[datetime, str] | None, batch: int
    ) -> tuple[list[Run], bool]:
        """The next ``batch`` request runs (newest first, after ``before``) that may match
        ``query``'s status, and whether more may follow them.

        Several run statuses are read as one sequence: each status's runs come from the
        index in order, and merging them keeps the order the keyset cursor relies on.
        """
        per_status = await asyncio.gather(
            *(
                self.engine.list_runs(
                    workflow=REQUEST_WORKFLOW,
                    status=status,
                    requester=query.requester,
                    created_after=query.created_after,
                    created_before=query.created_before,
                    before=before,
                    limit=batch,
                )
                for status in _run_statuses(query)
            )
        )
        merged = list(heapq.merge(*per_status, key=_newest_first))
        full = [some[-1] for some in per_status if len(some) == batch]
        if not full:
            return merged, False
        # A status that filled its batch may have more runs older than its last one: the
        # merged sequence is complete only up to the first such last run.
        cutoff = min(_newest_first(run) for run in full)
        return [run for run in merged if _newest_first(run) <= cutoff], True

    # -- cancel -------------------------------------------------------------------
    async def cancel(self, request_id: str, *, reason: str, client: str) -> RequestView:
        """Cancel a pending request (409 if it is already final)."""
        await self._run(request_id)
        await self.engine.cancel(request_id, reason=reason, actor=f"api:{client}")
        return await self.get(request_id)


def _newest_first(run: Run) -> tuple[float, str]:
    """The engine's order of runs (``list_runs``): newest first, then by id."""
    return (-run.created_at.timestamp(), run.id)


def _run_statuses(query: RequestsQuery) -> list[RunStatus | None]:
    """The run statuses a request of ``query.status`` can have ([None]: any).

    A pending request's run is running (not asked yet) or parked on its question; a failed
    request's run failed. A decided or cancelled request's run may still be running, or
    finished in more than one way, so those are filtered on the request itself.
    """
    if query.status is RequestStatus.PENDING:
        return [RunStatus.RUNNING, RunStatus.SUSPENDED]
    if query.status is RequestStatus.FAILED:
        return [RunStatus.FAILED]
    return [None]


def _encode_cursor(created_at: datetime, run_id: str) -> str:
    raw = f"{created_at.isoformat()}|{run_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, run_id = raw.partition("|")
        created_at = datetime.fromisoformat(at)
    except ValueError:
        raise Problem(
            400, "invalid_query", "cursor is not a next_cursor", errors={"cursor": "invalid"}
        ) from None
    if not run_id or created_at.tzinfo is None:
        raise Problem(
            400, "invalid_query", "cursor is not a next_cursor", errors={"cursor": "invalid"}
        )
    return created_at, run_id
