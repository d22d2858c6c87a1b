"""Requests that must change nothing: bad signatures, stale timestamps, tampered references."""

from __future__ import annotations

import copy
import json
from typing import Any

from bot import RefSigner
from bot.slack import action_ids
from engine import InterruptStatus
from tests.fakes.signing import block_actions_payload, interactive_body, slash_command_body
from tests.support.polling import eventually
from tests.support.slack_bot import Bot


async def assert_nothing_changed(bot: Bot, run_id: str) -> None:
    """The run's interrupt is still pending with no response, and Slack was not updated."""
    interrupt = await bot.interrupt(run_id)
    assert interrupt.status is InterruptStatus.PENDING
    assert interrupt.responses == []
    assert bot.fake.calls("chat.update") == []


async def approve_click(bot: Bot) -> tuple[str, bytes]:
    """A new run and the body of U0ALICE's click on its Approve button, not yet sent."""
    run_id = await bot.start("change", {"service": "billing"})
    message = await bot.message(run_id)
    body = interactive_body(
        block_actions_payload(
            message=message.to_api(),
            action_id=action_ids.APPROVE,
            channel_id=message.channel,
            user_id="U0ALICE",
        )  # fmt: skip
    )
    return run_id, body


async def test_a_bad_signature_is_refused_with_401(bot: Bot) -> None:
    run_id, body = await approve_click(bot)

    reply = await bot.send(body, wrong_secret="not-the-secret")

    assert reply.status == 401
    await assert_nothing_changed(bot, run_id)
    assert bot.fake.ephemerals == []


async def test_a_stale_timestamp_is_refused_with_401(bot: Bot) -> None:
    run_id, body = await approve_click(bot)

    assert (await bot.send(body, stale=True)).status == 401
    assert (await bot.send(slash_command_body(text="list"), stale=True)).status == 401
    await assert_nothing_changed(bot, run_id)


async def test_a_tampered_button_value_gets_an_error_and_changes_nothing(bot: Bot) -> None:
    target = await bot.start("change", {"service": "billing"})
    other = await bot.start("change", {"service": "payroll"})
    message = copy.deepcopy(await bot.message(other))
    target_ref = bot.slack.deps.signer.sign(target, (await bot.interrupt(target)).id)

    def retarget(payload: dict[str, Any]) -> None:
        # Keep the MAC of the clicked button, swap in another run's ids.
        value = payload["actions"][0]["value"].split(".")
        payload["actions"][0]["value"] = ".".join([*target_ref.split(".")[:3], value[3]])

    reply = await bot.click(message, action_ids.APPROVE, user="U0ALICE", edit=retarget)

    assert reply.status == 200
    assert "not valid" in await bot.ephemeral("U0ALICE")
    await assert_nothing_changed(bot, target)
    await assert_nothing_changed(bot, other)


async def test_a_reference_signed_elsewhere_or_to_an_unknown_run_changes_nothing(
    bot: Bot,
) -> None:
    run_id = await bot.start("change", {"service": "billing"})
    message = copy.deepcopy(await bot.message(run_id))
    interrupt_id = (await bot.interrupt(run_id)).id

    def foreign(payload: dict[str, Any]) -> None:
        payload["actions"][0]["value"] = RefSigner("other-install").sign(run_id, interrupt_id)

    def unknown(payload: dict[str, Any]) -> None:
        payload["actions"][0]["value"] = bot.slack.deps.signer.sign("no-such-run", "x")

    await bot.click(message, action_ids.APPROVE, user="U0ALICE", edit=foreign)
    assert "not valid" in await bot.ephemeral("U0ALICE")
    await bot.click(message, action_ids.APPROVE, user="U0ALICE", edit=unknown)
    assert "no longer exists" in await bot.ephemeral("U0ALICE", count=2)
    await assert_nothing_changed(bot, run_id)


async def test_a_tampered_modal_reference_is_refused_and_resumes_nothing(bot: Bot) -> None:
    run_id = await bot.start("refund", {"customer": "ACME", "amount": 5})
    message = await bot.message(run_id)
    await bot.click(message, action_ids.APPROVE_MODAL, user="U0ALICE")
    opened = await eventually(lambda: bot.fake.calls("views.open"), what="views.open")
    view = opened[-1].args["view"]

    def tamper(payload: dict[str, Any]) -> None:
        payload["view"]["private_metadata"] = payload["view"]["private_metadata"][:-2] + "xx"

    reply = await bot.submit(
        view, {"reason": "double charged", "ticket": "7"}, user="U0ALICE", edit=tamper
    )

    assert reply.status == 200
    body = reply.json()
    assert body["response_action"] == "update"
    assert "not valid" in json.dumps(body["view"])
    await assert_nothing_changed(bot, run_id)


async def test_an_unknown_signoff_action_changes_nothing(bot: Bot) -> None:
    run_id = await bot.start("change", {"service": "billing"})
    message = copy.deepcopy(await bot.message(run_id))

    def rename(payload: dict[str, Any]) -> None:
        payload["actions"][0]["action_id"] = "signoff:launch-missiles"

    await bot.click(message, action_ids.APPROVE, user="U0ALICE", edit=rename)

    assert "does not know this control" in await bot.ephemeral("U0ALICE")
    await assert_nothing_changed(bot, run_id)
