"""The rule both stores apply, inside their transaction, before retrying a run."""

from __future__ import annotations


def refusal(status: str, cancelled_requests: int) -> str | None:
    """Why a run in ``status`` with ``cancelled_requests`` cancelled interrupts cannot be
    retried, or None if it can.

    Only a failed run runs again. When it failed, its pending requests were cancelled
    (and their Slack messages say so); running it again would resume a step with a
    cancelled answer, so such a run is refused: start a new run instead.
    """
    if status == "failed":
        if cancelled_requests:
            return (
                f"{cancelled_requests} of its requests were cancelled when it failed; "
                "start a new run instead"
            )
        return None
    return f"it is {status}, not failed: only a failed run can be retried"
