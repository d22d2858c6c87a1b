"""The example workflows, engine-level: start, answer, and check the outcome."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.slack.blocks.forms import check_renderable
from bot.web.views import iter_steps
from engine import (
    DuplicateResponse,
    Engine,
    EventType,
    Interrupt,
    NotAuthorized,
    ResumeValidationError,
    RunStatus,
    Workflow,
    open_store,
)
from examples.access_request import access_request
from examples.deploy_approval import deploy_approval
from examples.expense_approval import expense_approval
from tests.support.polling import eventually

# Who is in which Slack user group, as the Slack authorizer would find out.
GROUPS = {
    "group:S0PROD": {"U1", "U2", "U3"},
    "group:S0DEPLOY": {"U1", "U5"},
    "group:S0FINANCE": {"F1"},
    "group:S0SECURITY": {"SEC1"},
}


async def in_group(interrupt: Interrupt, actor: str) -> bool:
    """The engine's authorizer: members of a listed group may answer."""
    return any(actor in GROUPS.get(r, ()) for r in interrupt.responders)


class Clock:
    """A clock the test can move forward, to reach reminders and expiries."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


Make = Callable[[Workflow], Awaitable[tuple[Engine, Clock]]]


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Make]:
    """``engine, clock = await make(workflow)``: a started engine with the group authorizer."""
    engines: list[Engine] = []

    async def build(wf: Workflow) -> tuple[Engine, Clock]:
        clock = Clock()
        engine = Engine(
            open_store(str(tmp_path / f"{wf.name}.db")),
            workflows=[wf],
            authorizer=in_group,
            clock=clock,
            poll_interval=0.05,
            lease=5.0,
        )
        await engine.start_background()
        engines.append(engine)
        return engine, clock

    yield build
    for engine in engines:
        await engine.close(grace=1.0)


async def waiting(engine: Engine, run_id: str) -> Interrupt:
    """The run's one pending interrupt, once it is parked."""
    run = await engine.wait(run_id, timeout=10)
    assert run.status is RunStatus.SUSPENDED, run
    (interrupt,) = await engine.list_interrupts(run_id=run_id)
    return interrupt


@pytest.mark.parametrize("wf", [deploy_approval, expense_approval, access_request])
def test_every_example_can_be_answered_in_slack(wf: Workflow) -> None:
    models = [s.resume_model for s in iter_steps(wf) if s.resume_model is not None]
    assert models
    for model in models:
        check_renderable(model)


# -- deploy approval -----------------------------------------------------------------------


async def test_production_deploy_needs_two_of_the_group_and_not_the_requester(make: Make) -> None:
    engine, _ = await make(deploy_approval)
    run_id = await engine.start(
        "deploy_approval",
        {"service": "billing", "version": "2.4.1", "environment": "production"},
        requester="U1",
    )
    ask = await waiting(engine, run_id)
    assert ask.responders == ["group:S0PROD"] and ask.quorum == 2
    with pytest.raises(NotAuthorized):  # the requester, although in the group
        await engine.resume(run_id, ask.id, {"approved": True}, actor="U1")
    with pytest.raises(NotAuthorized):  # not in the group
        await engine.resume(run_id, ask.id, {"approved": True}, actor="U5")
    first = await engine.resume(run_id, ask.id, {"approved": True}, actor="U2")
    assert not first.resolved and (first.approvals, first.needed) == (1, 2)
    with pytest.raises(DuplicateResponse):
        await engine.resume(run_id, ask.id, {"approved": True}, actor="U2")
    await engine.resume(run_id, ask.id, {"approved": True, "comment": "lgtm"}, actor="U3")
    run = await engine.wait(run_id, timeout=10)
    assert run.status is RunStatus.COMPLETED
    assert run.output["deployed"] is True
    assert run.output["approved_by"] == ["U2", "U3"]


async def test_staging_deploy_needs_one_and_a_rejection_ends_it(make: Make) -> None:
    engine, _ = await make(deploy_approval)
    run_id = await engine.start(
        "deploy_approval", {"service": "web", "version": "1.0"}, requester="U9"
    )
    ask = await waiting(engine, run_id)
    assert ask.responders == ["group:S0DEPLOY"] and ask.quorum == 1
    await engine.resume(run_id, ask.id, {"approved": False, "comment": "freeze"}, actor="U5")
    run = await engine.wait(run_id, timeout=10)
    assert run.status is RunStatus.REJECTED
    assert run.error is not None and run.error.message == "deploy rejected by U5: freeze"


async def test_deploy_reminds_after_an_hour_and_expires_as_rejected_after_a_day(make: Make) -> None:
    engine, clock = await make(deploy_approval)
    run_id = await engine.start(
        "deploy_approval",
        {"service": "web", "version": "1.0", "environment": "production"},
        requester="U9",
    )
    await waiting(engine, run_id)
    clock.offset = timedelta(hours=1, minutes=1).total_seconds()

    async def reminded() -> bool:
        events = await engine.events(run_id)
        return any(e.type is EventType.REMINDED for e in events)

    await eventually(reminded)
    clock.offset = timedelta(days=1, minutes=1).total_seconds()
    run = await engine.wait(run_id, until={RunStatus.REJECTED}, timeout=10)
    assert run.error is not None and "expired" in run.error.message
    (ask,) = (await engine.get_run(run_id)).interrupts
    assert ask.status.value == "expired" and ask.resolved_by is None


# -- expense approval ----------------------------------------------------------------------

EXPENSE = {"employee": "E1", "manager": "M1", "description": "train tickets"}


async def test_small_expense_needs_the_manager_only(make: Make) -> None:
    engine, _ = await make(expense_approval)
    run_id = await engine.start("expense_approval", {**EXPENSE, "amount": "120.50"}, requester="E1")
    ask = await waiting(engine, run_id)
    assert ask.responders == ["M1"]
    await engine.resume(run_id, ask.id, {"approved": True}, actor="M1")
    run = await engine.wait(run_id, timeout=10)
    assert run.status is RunStatus.COMPLETED
    assert run.output["approved_by"] == ["M1"] and run.output["amount"] == "120.50"


async def test_large_expense_needs_the_manager_then_finance(make: Make) -> None:
    engine, _ = await make(expense_approval)
    run_id = await engine.start("expense_approval", {**EXPENSE, "amount": "4200"}, requester="E1")
    manager = await waiting(engine, run_id)
    await engine.resume(run_id, manager.id, {"approved": True}, actor="M1")
    finance = await waiting(engine, run_id)
    assert finance.responders == ["group:S0FINANCE"]
    with pytest.raises(NotAuthorized):
        await engine.resume(run_id, finance.id, {"approved": True}, actor="M1")
    await engine.resume(run_id, finance.id, {"approved": True}, actor="F1")
    run = await engine.wait(run_id, timeout=10)
    assert run.status is RunStatus.COMPLETED
    assert run.output["approved_by"] == ["M1", "F1"]


async def test_finance_rejection_ends_the_run_without_paying(make: Make) -> None:
    engine, _ = await make(expense_approval)
    run_id = await engine.start("expense_approval", {**EXPENSE, "amount": "4200"}, requester="E1")
    manager = await waiting(engine, run_id)
    await engine.resume(run_id, manager.id, {"approved": True}, actor="M1")
    finance = await waiting(engine, run_id)
    await engine.resume(run_id, finance.id, {"approved": False, "comment": "no"}, actor="F1")
    run = await engine.wait(run_id, timeout=10)
    assert run.status is RunStatus.REJECTED and run.output is None
    assert run.error is not None and run.error.message == "rejected by finance (F1): no"
    steps = [s.name for s in (await engine.get_run(run_id)).steps]
    assert "reimburse" not in steps


# -- access request ------------------------------------------------------------------------

REQUEST = {"system": "aws", "reason": "debug the billing incident"}


def _grant(**overrides: Any) -> dict[str, Any]:
    until = datetime.now(UTC).date() + timedelta(days=14)
    return {
        "decision": "grant",
        "environments": ["staging", "production"],
        "until": until.isoformat(),
        "justification": "on call for billing this week",
        "reviewer": "U0REVIEW",
        **overrides,
    }


async def test_access_grant_through_the_form(make: Make) -> None:
    engine, _ = await make(access_request)
    run_id = await engine.start("access_request", REQUEST, requester="U0ASK")
    ask = await waiting(engine, run_id)
    with pytest.raises(ResumeValidationError) as err:
        await engine.resume(
            run_id, ask.id, _grant(environments=[], until="2000-01-01"), actor="SEC1"
        )
    assert set(err.value.errors) == {"environments", "until"}
    await engine.resume(run_id, ask.id, _grant(), actor="SEC1")
    run = await engine.wait(run_id, timeout=10)
    assert run.status is RunStatus.COMPLETED
    assert run.output["grantee"] == "U0ASK" and run.output["granted_by"] == "SEC1"
    assert run.output["environments"] == ["staging", "production"]
    assert date.fromisoformat(run.output["until"]) > datetime.now(UTC).date()


async def test_access_denial_ends_the_run(make: Make) -> None:
    engine, _ = await make(access_request)
    run_id = await engine.start("access_request", REQUEST, requester="U0ASK")
    ask = await waiting(engine, run_id)
    deny = {"decision": "deny", "justification": "use the read-only role", "reviewer": "U0R"}
    await engine.resume(run_id, ask.id, deny, actor="SEC1")
    run = await engine.wait(run_id, timeout=10)
    assert run.status is RunStatus.REJECTED
    assert run.error is not None and "use the read-only role" in run.error.message
