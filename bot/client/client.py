"""``AsyncClient`` and ``Client``: ask people through a Signoff server and get typed answers.

Both speak the request API (``/api/requests``) with httpx. Creates carry an idempotency key
per logical request, so a retry after a dropped connection never makes a second request;
waits are long polls (``?wait=60``) that resume after a dropped connection or a server
restart until the caller's own timeout. Nothing here imports Slack, aiosqlite or the
engine.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar, overload

import httpx
from pydantic import BaseModel, Field

from bot.client.errors import (
    ApiError,
    Cancelled,
    ConnectionFailed,
    Expired,
    Rejected,
    RequestFailed,
    WaitTimeout,
)
from bot.client.models import MAX_WAIT, Receipt, RequestList, RequestStatus, RequestView
from bot.client.receipts import canonical_json, digest_of, verify_signature

__all__ = ["Approval", "AsyncClient", "Client", "verify_receipt"]

M = TypeVar("M", bound=BaseModel)

_RETRY_STATUS = {502, 503, 504}


class Approval(BaseModel):
    """The answer of the approve/reject preset."""

    approved: bool
    comment: str | None = Field(default=None)


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def _seconds(value: timedelta | float | None) -> float | None:
    if value is None:
        return None
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _schema(response: type[BaseModel] | Mapping[str, Any] | str | None) -> Any:
    if response is None:
        return None
    if isinstance(response, str):
        return {"preset": response}
    if isinstance(response, type) and issubclass(response, BaseModel):
        return response.model_json_schema()
    return dict(response)


def build_body(
    title: str,
    *,
    fields: Mapping[str, Any] | None = None,
    text: str = "",
    response: type[BaseModel] | Mapping[str, Any] | str | None = None,
    responders: Iterable[str] = (),
    quorum: int = 1,
    requester: str | None = None,
    channel: str | None = None,
    allow_requester: bool = False,
    expires: timedelta | float | datetime | None = None,
    on_expiry: str | Mapping[str, Any] | None = None,
    reminders: Iterable[timedelta | float] = (),
    callback_url: str | None = None,
) -> dict[str, Any]:
    """The JSON body of ``POST /api/requests`` (a pydantic model as ``response`` is sent as
    its JSON Schema; a datetime ``expires`` is a deadline, anything else a duration)."""
    body: dict[str, Any] = {"title": title, "text": text, "fields": dict(fields or {})}
    schema = _schema(response)
    if schema is not None:
        body["response"] = schema
    body.update(responders=list(responders), quorum=quorum, allow_requester=allow_requester)
    if requester is not None:
        body["requester"] = requester
    if channel is not None:
        body["channel"] = channel
    if isinstance(expires, datetime):
        body["expires_at"] = expires.isoformat()
    elif expires is not None:
        body["expires_in"] = _seconds(expires)
    if on_expiry is not None:
        body["on_expiry"] = on_expiry if isinstance(on_expiry, str) else dict(on_expiry)
    reminder_seconds = [_seconds(r) for r in reminders]
    if reminder_seconds:
        body["reminders"] = reminder_seconds
    if callback_url is not None:
        body["callback_url"] = callback_url
    return body


def list_params(
    *,
    limit: int = 50,
    status: str | None = None,
    requester: str | None = None,
    client: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    cursor: str | None = None,
    offset: int = 0,
) -> dict[str, Any]:
    """The query of ``GET /api/requests`` (aware datetimes for the creation range)."""
    params: dict[str, Any] = {"limit": limit}
    named = {"status": status, "requester": requester, "client": client, "cursor": cursor}
    params.update({k: v for k, v in named.items() if v})
    for key, at in (("created_after", created_after), ("created_before", created_before)):
        if at is not None:
            params[key] = at.isoformat()
    if offset:
        params["offset"] = offset
    return params


def _error(response: httpx.Response) -> ApiError:
    try:
        data = response.json()
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    return ApiError(
        response.status_code,
        str(data.get("error", "http_error")),
        str(data.get("message", response.reason_phrase)),
        data.get("errors") if isinstance(data.get("errors"), dict) else None,
    )


def outcome(view: RequestView, response: Any) -> Any:
    """The typed answer of a final request, or the error saying why there is none."""
    if view.status in (RequestStatus.APPROVED, RequestStatus.ANSWERED) or (
        view.status is RequestStatus.EXPIRED and view.answer is not None
    ):
        answer = view.answer or {}
        if isinstance(response, type) and issubclass(response, BaseModel):
            return response.model_validate(answer)
        if response is None or isinstance(response, str):
            return Approval.model_validate(answer)
        return answer
    errors = {
        RequestStatus.REJECTED: Rejected,
        RequestStatus.EXPIRED: Expired,
        RequestStatus.CANCELLED: Cancelled,
    }
    raise errors.get(view.status, RequestFailed)(view)


def verify_receipt(
    receipt: Receipt | RequestView | Mapping[str, Any],
    expected_fields: Mapping[str, Any],
    *,
    secret: str | bytes,
    title: str | None = None,
    statuses: Iterable[str] = ("approved", "answered"),
) -> bool:
    """Whether ``receipt`` is a genuine decision covering exactly ``expected_fields``.

    True only if the signature is valid for ``secret``, the digest matches what was shown,
    the fields shown equal ``expected_fields`` (and the title ``title``, if given), and the
    status is one of ``statuses``. A caller whose action changed must ask again.
    """
    if isinstance(receipt, RequestView):
        if receipt.receipt is None:
            return False
        receipt = receipt.receipt
    if not isinstance(receipt, Receipt):
        receipt = Receipt.model_validate(receipt)
    if not verify_signature(receipt.payload, receipt.signature, secret):
        return False
    content = json.loads(receipt.payload)
    shown = content.get("shown", {})
    if digest_of(shown) != content.get("digest"):
        return False
    if canonical_json(shown.get("fields")) != canonical_json(dict(expected_fields)):
        return False
    if title is not None and shown.get("title") != title:
        return False
    return content.get("status") in set(statuses)


class _Base:
    def __init__(
        self,
        url: str | None,
        token: str | None,
        *,
        secret: str | None,
        retries: int,
        timeout: float,
    ) -> None:
        url = url or _env("SIGNOFF_URL")
        token = token or _env("SIGNOFF_TOKEN", "SIGNOFF_API_TOKEN")
        if not url:
            raise ValueError("no server URL: pass url= or set SIGNOFF_URL")
        if not token:
            raise ValueError("no API token: pass token= or set SIGNOFF_TOKEN")
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}", "User-Agent": "signoff-client/1"}
        self.secret = secret or _env("SIGNOFF_CALLBACK_SECRET")
        self.retries = retries
        self.timeout = timeout

    def _backoff(self, attempt: int) -> float:
        return float(min(5.0, 0.2 * 2**attempt))

    def verify(
        self,
        receipt: Receipt | RequestView | Mapping[str, Any],
        expected_fields: Mapping[str, Any],
        *,
        title: str | None = None,
    ) -> bool:
        """``verify_receipt`` with this client's callback secret."""
        if not self.secret:
            raise ValueError("no secret: pass secret= or set SIGNOFF_CALLBACK_SECRET")
        return verify_receipt(receipt, expected_fields, secret=self.secret, title=title)


class AsyncClient(_Base):
    """Ask people through a Signoff server (asyncio).

    Args:
        url: the server (default ``$SIGNOFF_URL``).
        token: an API token (default ``$SIGNOFF_TOKEN``, then ``$SIGNOFF_API_TOKEN``).
        secret: the callback secret, to verify receipts (default ``$SIGNOFF_CALLBACK_SECRET``).
        retries: attempts after a dropped connection or a 502/503/504.
        timeout: seconds per HTTP call (long polls add their wait).
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        secret: str | None = None,
        retries: int = 5,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(url, token, secret=secret, retries=retries, timeout=timeout)
        self.http = httpx.AsyncClient(
            base_url=self.url, headers=self.headers, timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections."""
        await self.http.aclose()

    async def _call(self, method: str, path: str, *, retries: int | None = None, **kw: Any) -> Any:
        attempts = self.retries if retries is None else retries
        for attempt in range(attempts + 1):
            try:
                response = await self.http.request(method, path, **kw)
            except httpx.TransportError as exc:
                if attempt >= attempts:
                    raise ConnectionFailed(f"{self.url}: {type(exc).__name__}: {exc}") from exc
            else:
                if response.status_code not in _RETRY_STATUS or attempt >= attempts:
                    if response.status_code >= 400:
                        raise _error(response)
                    return response.json()
            await asyncio.sleep(self._backoff(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    async def request(
        self, title: str, *, idempotency_key: str | None = None, **options: Any
    ) -> RequestView:
        """Create a request; return it at once (pending). Options as in ``build_body``."""
        body = build_body(title, **options)
        key = idempotency_key or uuid.uuid4().hex  # one per logical request: retries reuse it
        data = await self._call(
            "POST", "/api/requests", json=body, headers={"Idempotency-Key": key}
        )
        return RequestView.model_validate(data)

    async def get(self, request_id: str, *, wait: float = 0) -> RequestView:
        """The request now, or once final within ``wait`` seconds (at most 60)."""
        wait = min(max(wait, 0.0), MAX_WAIT)
        data = await self._call(
            "GET",
            f"/api/requests/{request_id}",
            params={"wait": wait} if wait else None,
            timeout=self.timeout + wait,
        )
        return RequestView.model_validate(data)

    async def wait(self, request_id: str, *, timeout: float | None = None) -> RequestView:
        """Wait until the request is final (``WaitTimeout`` after ``timeout`` seconds).

        Dropped connections and server restarts are retried for as long as the timeout
        allows: the request is durable on the server.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        failures = 0
        while True:
            left = MAX_WAIT if deadline is None else min(MAX_WAIT, deadline - time.monotonic())
            try:
                view = await self.get(request_id, wait=max(left, 0.0))
                failures = 0
            except ConnectionFailed:
                failures += 1
                view = None
            if view is not None and view.status.final:
                return view
            if deadline is not None and time.monotonic() >= deadline:
                if view is None:
                    view = await self.get(request_id)
                raise WaitTimeout(view)
            if view is None:
                await asyncio.sleep(self._backoff(min(failures, 5)))

    async def cancel(self, request_id: str, *, reason: str = "") -> RequestView:
        """Cancel a pending request."""
        data = await self._call(
            "POST", f"/api/requests/{request_id}/cancel", json={"reason": reason}
        )
        return RequestView.model_validate(data)

    async def list(self, *, limit: int = 50, **filters: Any) -> RequestList:
        """A page of requests, newest first.

        Filters (see ``list_params``): ``status``, ``requester``, ``client``,
        ``created_after``, ``created_before``, then ``cursor`` (a page's ``next_cursor``)
        or ``offset``.
        """
        params = list_params(limit=limit, **filters)
        return RequestList.model_validate(await self._call("GET", "/api/requests", params=params))

    @overload
    async def ask(
        self, title: str, *, response: type[M], timeout: float | None = None, **options: Any
    ) -> M: ...
    @overload
    async def ask(
        self, title: str, *, response: None = None, timeout: float | None = None, **options: Any
    ) -> Approval: ...
    @overload
    async def ask(
        self, title: str, *, response: Mapping[str, Any], timeout: float | None = None,
        **options: Any,
    ) -> dict[str, Any]: ...  # fmt: skip
    async def ask(
        self, title: str, *, response: Any = None, timeout: float | None = None, **options: Any
    ) -> Any:
        """Ask and wait: the typed answer, or ``Rejected`` / ``Expired`` / ``Cancelled``.

        With ``response=Model`` the answer is a ``Model``; without, the approve/reject preset
        (an ``Approval``, returned only when approved). An expiry with a default answer
        returns that default. ``WaitTimeout`` after ``timeout`` seconds (the request stays).
        """
        created = await self.request(title, response=response, **options)
        view = await self.wait(created.id, timeout=timeout)
        return outcome(view, response)


class Client(_Base):
    """Ask people through a Signoff server (blocking); the same API as ``AsyncClient``."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        secret: str | None = None,
        retries: int = 5,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(url, token, secret=secret, retries=retries, timeout=timeout)
        self.http = httpx.Client(
            base_url=self.url, headers=self.headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self.http.close()

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        for attempt in range(self.retries + 1):
            try:
                response = self.http.request(method, path, **kw)
            except httpx.TransportError as exc:
                if attempt >= self.retries:
                    raise ConnectionFailed(f"{self.url}: {type(exc).__name__}: {exc}") from exc
            else:
                if response.status_code not in _RETRY_STATUS or attempt >= self.retries:
                    if response.status_code >= 400:
                        raise _error(response)
                    return response.json()
            time.sleep(self._backoff(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def request(
        self, title: str, *, idempotency_key: str | None = None, **options: Any
    ) -> RequestView:
        """Create a request; return it at once (pending)."""
        body = build_body(title, **options)
        key = idempotency_key or uuid.uuid4().hex
        data = self._call("POST", "/api/requests", json=body, headers={"Idempotency-Key": key})
        return RequestView.model_validate(data)

    def get(self, request_id: str, *, wait: float = 0) -> RequestView:
        """The request now, or once final within ``wait`` seconds (at most 60)."""
        wait = min(max(wait, 0.0), MAX_WAIT)
        data = self._call(
            "GET",
            f"/api/requests/{request_id}",
            params={"wait": wait} if wait else None,
            timeout=self.timeout + wait,
        )
        return RequestView.model_validate(data)

    def wait(self, request_id: str, *, timeout: float | None = None) -> RequestView:
        """Wait until the request is final (``WaitTimeout`` after ``timeout`` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        failures = 0
        while True:
            left = MAX_WAIT if deadline is None else min(MAX_WAIT, deadline - time.monotonic())
            try:
                view: RequestView | None = self.get(request_id, wait=max(left, 0.0))
                failures = 0
            except ConnectionFailed:
                failures += 1
                view = None
            if view is not None and view.status.final:
                return view
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(view if view is not None else self.get(request_id))
            if view is None:
                time.sleep(self._backoff(min(failures, 5)))

    def cancel(self, request_id: str, *, reason: str = "") -> RequestView:
        """Cancel a pending request."""
        data = self._call("POST", f"/api/requests/{request_id}/cancel", json={"reason": reason})
        return RequestView.model_validate(data)

    def list(self, *, limit: int = 50, **filters: Any) -> RequestList:
        """A page of requests, newest first (filters as in ``AsyncClient.list``)."""
        params = list_params(limit=limit, **filters)
        return RequestList.model_validate(self._call("GET", "/api/requests", params=params))

    @overload
    def ask(
        self, title: str, *, response: type[M], timeout: float | None = None, **options: Any
    ) -> M: ...
    @overload
    def ask(
        self, title: str, *, response: None = None, timeout: float | None = None, **options: Any
    ) -> Approval: ...
    @overload
    def ask(
        self, title: str, *, response: Mapping[str, Any], timeout: float | None = None,
        **options: Any,
    ) -> dict[str, Any]: ...  # fmt: skip
    def ask(
        self, title: str, *, response: Any = None, timeout: float | None = None, **options: Any
    ) -> Any:
        """Ask and wait (see ``AsyncClient.ask``)."""
        created = self.request(title, response=response, **options)
        return outcome(self.wait(created.id, timeout=timeout), response)
