"""Who may respond: user ids, user groups (usergroups.users.list, cached) or anyone."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from bot.slack.authorization import UsergroupAuthorizer, describe_responders, group_id
from engine import Interrupt, InterruptKind, InterruptStatus
from tests.fakes.slack_api import Failure, FakeSlack


def interrupt(responders: list[str]) -> Interrupt:
    """A pending interrupt with these responders."""
    return Interrupt(
        run_id="r1", id="i1", workflow="wf", version="1", path="0:s", step="s",
        kind=InterruptKind.INPUT, status=InterruptStatus.PENDING, responders=responders,
        created_at=datetime.now(UTC),
    )  # fmt: skip


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_group_entries_are_s_ids_with_or_without_the_prefix() -> None:
    assert group_id("S0123ABC") == "S0123ABC"
    assert group_id("group:S0123ABC") == "S0123ABC"
    assert group_id("U0123ABC") is None
    assert group_id("group:oncall") is None


def test_describe_responders_mentions_users_and_groups() -> None:
    assert describe_responders([]) == "anyone in the channel"
    assert describe_responders(["U0ALICE", "group:S0OPS", "S0SRE"]) == (
        "<@U0ALICE>, <!subteam^S0OPS>, <!subteam^S0SRE>"
    )
    assert describe_responders(["<script>"]) == "&lt;script&gt;"


async def test_members_of_a_listed_group_are_authorized(fake_slack: FakeSlack) -> None:
    fake_slack.set_usergroup("S0OPS", ["U0BOB"])
    authorize = UsergroupAuthorizer(fake_slack.client())

    assert await authorize(interrupt(["group:S0OPS"]), "U0BOB") is True
    assert await authorize(interrupt(["group:S0OPS"]), "U0DAVE") is False
    assert await authorize(interrupt(["U0BOB"]), "U0DAVE") is False  # no group: not asked


async def test_membership_is_cached_for_the_ttl(fake_slack: FakeSlack) -> None:
    fake_slack.set_usergroup("S0OPS", ["U0BOB"])
    clock = Clock()
    authorize = UsergroupAuthorizer(fake_slack.client(), ttl=60, clock=clock)

    await authorize(interrupt(["S0OPS"]), "U0BOB")
    await authorize(interrupt(["S0OPS"]), "U0DAVE")
    assert len(fake_slack.calls("usergroups.users.list")) == 1

    fake_slack.set_usergroup("S0OPS", ["U0DAVE"])
    clock.now += 61
    assert await authorize(interrupt(["S0OPS"]), "U0DAVE") is True
    assert len(fake_slack.calls("usergroups.users.list")) == 2


async def test_concurrent_checks_share_one_lookup(fake_slack: FakeSlack) -> None:
    fake_slack.set_usergroup("S0OPS", ["U0BOB"])
    authorize = UsergroupAuthorizer(fake_slack.client())

    results = await asyncio.gather(*(authorize(interrupt(["S0OPS"]), "U0BOB") for _ in range(10)))

    assert results == [True] * 10
    assert len(fake_slack.calls("usergroups.users.list")) == 1


async def test_lookup_failures_refuse_and_are_not_cached(fake_slack: FakeSlack) -> None:
    fake_slack.set_usergroup("S0OPS", ["U0BOB"])
    fake_slack.fail_next("usergroups.users.list", Failure.api_error("missing_scope"))
    authorize = UsergroupAuthorizer(fake_slack.client())

    assert await authorize(interrupt(["S0OPS"]), "U0BOB") is False  # fails closed
    assert await authorize(interrupt(["S0OPS"]), "U0BOB") is True  # asked again
    assert await authorize(interrupt(["S0NOPE"]), "U0BOB") is False  # no_such_subteam
