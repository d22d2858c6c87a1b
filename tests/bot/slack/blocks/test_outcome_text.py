"""The thread reply that says how a run ended."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.slack.blocks.compose import finished_text
from engine import ErrorInfo, Run, RunStatus


def run_ended(status: RunStatus, *, output: object = None, reason: str = "") -> Run:
    """A finished run as the engine records it."""
    now = datetime.now(UTC)
    return Run(
        id="r1",
        workflow="refund",
        version="1",
        status=status,
        input={},
        output=output,
        error=ErrorInfo(type="Rejected", message=reason) if reason else None,
        created_at=now,
        updated_at=now,
    )


def test_a_rejected_run_shows_its_reason_and_its_typed_bail_result() -> None:
    text = finished_text(
        run_ended(
            RunStatus.REJECTED,
            output={"order_id": "A-17", "refund_limit": 50},
            reason="over the limit",
        )
    )
    assert text.startswith(":x: Run `r1` was rejected: over the limit")
    assert "*Order id*: A-17" in text and "*Refund limit*: 50" in text


def test_a_rejected_run_without_a_result_shows_only_its_reason() -> None:
    text = finished_text(run_ended(RunStatus.REJECTED, reason="no"))
    assert text == ":x: Run `r1` was rejected: no"
