"""Where requests go: channel only, DMs only, both, or the original rule, per workflow or
per request."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from bot.slack.delivery import delivery_mode, parse_policy, targets
from tests.support.slack_bot import CHANNEL, BotFactory


def interrupt(**fields: Any) -> Any:
    base = {"responders": [], "channel": None, "meta": {}, "workflow": "change"}
    return SimpleNamespace(**{**base, **fields})


def test_the_policy_is_a_default_and_per_workflow_modes() -> None:
    assert parse_policy("") == {"*": "auto"}
    assert parse_policy("channel, refund=dm") == {"*": "channel", "refund": "dm"}
    with pytest.raises(ValueError, match="unknown delivery mode"):
        parse_policy("loud")


def test_a_requests_own_mode_wins_over_its_workflows() -> None:
    policy = parse_policy("channel,change=both")
    assert delivery_mode(interrupt(), policy) == "both"
    assert delivery_mode(interrupt(workflow="other"), policy) == "channel"
    assert delivery_mode(interrupt(meta={"delivery": "dm"}), policy) == "dm"


@pytest.mark.parametrize(
    ("mode", "fields", "expected"),
    [
        ("auto", {"responders": ["U1", "U2"]}, ["U1", "U2"]),
        ("auto", {"responders": ["U1", "S0OPS"]}, ["U1", "C0DEF"]),
        ("channel", {"responders": ["U1"]}, ["C0DEF"]),
        ("channel", {"responders": ["U1"], "channel": "C0OWN"}, ["C0OWN"]),
        ("dm", {"responders": ["U1", "S0OPS"], "channel": "C0OWN"}, ["U1"]),
        ("dm", {"responders": ["S0OPS"]}, ["C0DEF"]),  # nobody to DM: the original rule
        ("both", {"responders": ["U1"]}, ["C0DEF", "U1"]),
    ],
)
def test_targets_by_mode(mode: str, fields: dict[str, Any], expected: list[str]) -> None:
    assert targets(interrupt(**fields), mode, "C0DEF") == expected


async def test_channel_only_posts_no_dms_and_both_posts_each(make_bot: BotFactory) -> None:
    bot = await make_bot(SIGNOFF_DELIVERY="channel,refund=dm")
    quiet = await bot.start("change", {"service": "a", "approvers": ["U0ALICE", "U0BOB"]})
    (message,) = await bot.posted(quiet)
    assert message.channel == CHANNEL
    assert not [c for c in bot.fake.calls("conversations.open")]

    both = await make_bot(SIGNOFF_DELIVERY="both")
    loud = await both.start("change", {"service": "b", "approvers": ["U0ALICE"]})
    posted = await both.posted(loud, count=2)
    assert sorted(m.channel for m in posted) == sorted([CHANNEL, "D0ALICE"])
