"""An escalation shows in Slack: the message says who may respond now, its thread says what
changed, and the request is posted where it escalated, with controls that work."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.slack import action_ids
from engine import Escalation, InterruptStatus, StepContext, Workflow, step
from tests.e2e.wf_approvals import Approval, ChangePlan, ChangeRequest, ChangeResult
from tests.support.polling import eventually
from tests.support.slack_bot import CHANNEL

ESCALATION_CHANNEL = "C0ESCALATE"


@step(title="Approve change")
async def approve_with_ladder(
    req: ChangeRequest, ctx: StepContext[ChangePlan, Approval]
) -> ChangeResult:
    """Ask U0ALICE; after 0.3 s also U0BOSS, announced in the escalation channel."""
    answer = await ctx.suspend(
        ChangePlan(service=req.service, version=req.version, summary="Deploy"),
        responders=["U0ALICE"],
        channel=CHANNEL,
        expires=timedelta(hours=1),
        escalate=[Escalation(after=0.3, add_responders=["U0BOSS"], channel=ESCALATION_CHANNEL)],
    )
    by = ctx.resolution.resolved_by if ctx.resolution else None
    return ChangeResult(
        service=req.service, version=req.version, approved_by=by, comment=answer.comment
    )


laddered = Workflow("laddered", input=ChangeRequest, output=ChangeResult).then(approve_with_ladder)


async def test_an_escalation_is_shown_on_the_message_and_posted_where_it_escalated(
    make_bot: Any,
) -> None:
    bot = await make_bot(workflows=[laddered])
    run_id = await bot.start("laddered", {"service": "billing"})
    original = await bot.message(run_id)

    def escalated_posts() -> list[Any]:
        return [m for m in bot.fake.messages(ESCALATION_CHANNEL) if m.thread_ts is None]

    (posted,) = await eventually(escalated_posts, what="the request posted where it escalated")

    def told_in_thread() -> list[Any]:
        return [
            m
            for m in bot.fake.messages(CHANNEL)
            if m.thread_ts == original.ts and "Escalated" in (m.text or "")
        ]

    (told,) = await eventually(told_in_thread, what="the escalation told in the thread")
    assert "<@U0BOSS>" in (told.text or "") and ESCALATION_CHANNEL in (told.text or "")
    updated = bot.fake.message(CHANNEL, original.ts)
    assert "U0BOSS" in str(updated.blocks)  # who may respond now, on the original message

    # The boss answers from the escalation channel's copy: once, and both copies show it.
    await bot.click(posted, action_ids.APPROVE, user="U0BOSS")
    interrupt = await bot.interrupt(run_id)
    assert interrupt.status is InterruptStatus.APPROVED
    assert interrupt.resolved_by == "U0BOSS"
    await eventually(
        lambda: (
            "U0BOSS" in str(bot.fake.message(ESCALATION_CHANNEL, posted.ts).blocks)
            and not any(
                b.get("type") == "actions"
                for b in bot.fake.message(ESCALATION_CHANNEL, posted.ts).blocks
            )
        ),
        what="the escalation channel's copy shows the outcome without buttons",
    )
    assert len(escalated_posts()) == 1
    assert len(told_in_thread()) == 1
