"""Starting runs from outside (webhooks, the REST API) with idempotency keys.

An ``Idempotency-Key`` maps to one run per workflow: the key is stored as
``"<workflow>:<key>"``, so two workflows' senders can never collide on a key, and a
retry through the webhook or the REST API finds the same run. A key reused with a
different input is refused instead of silently answering with an unrelated run.
"""

from __future__ import annotations

from typing import Any

from bot.web.problems import Problem
from engine import Engine, IdempotencyKeyReused, Run, RunNotFound

__all__ = ["IDEMPOTENCY_KEY_MAX", "check_idempotency_key", "scoped_key", "start_run"]

IDEMPOTENCY_KEY_MAX = 255


def check_idempotency_key(key: str | None) -> str | None:
    """Validate an ``Idempotency-Key`` header value (400 if unusable)."""
    if key is None:
        return None
    if not key or len(key) > IDEMPOTENCY_KEY_MAX or not key.isprintable() or not key.isascii():
        raise Problem(
            400,
            "invalid_idempotency_key",
            f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} printable ASCII characters",
        )
    return key


def scoped_key(workflow: str, key: str) -> str:
    """The engine idempotency key for a client's key on ``workflow``."""
    return f"{workflow}:{key}"


async def start_run(
    engine: Engine,
    workflow: str,
    data: Any,
    *,
    requester: str | None = None,
    idempotency_key: str | None = None,
) -> Run:
    """Start ``workflow`` with ``data`` (or find the run an idempotency key started).

    Raises:
        WorkflowNotRegistered: no such workflow.
        InvalidInput: ``data`` fails the workflow's input model; nothing is created.
        Problem: 422 ``idempotency_key_reused`` if the key started a run with other input.
    """
    key = scoped_key(workflow, idempotency_key) if idempotency_key is not None else None
    try:
        run_id = await engine.start(workflow, data, requester=requester, idempotency_key=key)
    except IdempotencyKeyReused as exc:
        raise Problem(
            422,
            "idempotency_key_reused",
            f"Idempotency-Key {idempotency_key!r} already started run {exc.run_id} with "
            "a different input; use a new key for a new request",
            run_id=exc.run_id,
        ) from None
    run = await engine.find_run(run_id)
    if run is None:  # pragma: no cover - it was committed before start() returned
        raise RunNotFound(run_id)
    return run
