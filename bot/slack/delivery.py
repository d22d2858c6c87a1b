"""Where a request goes: a channel only, DMs to its approvers only, both, or ``auto``.

``auto`` (the default) is Signoff's original rule: the request's channel if it names one;
else a DM to each user approver, plus the default channel when user groups (or anyone) may
answer too; else the default channel. The other modes, chosen per workflow
(``SIGNOFF_DELIVERY="channel,refund=dm"``) or per request
(``ctx.suspend(..., meta={"delivery": "dm"})``, which wins):

* ``channel``: only the request's channel (or the default channel); no DMs, less noise.
  With no channel at all it is reported undelivered, like any request with nowhere to go.
* ``dm``: only DMs to the user approvers. A request with no user approvers (groups only,
  or anyone) falls back to ``auto``, so it is never left unseen.
* ``both``: the channel (the request's or the default) and a DM to each user approver.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.slack.blocks.responders import group_id
from engine import Interrupt

__all__ = ["DEFAULT_KEY", "META_KEY", "MODES", "delivery_mode", "parse_policy", "targets"]

MODES = ("auto", "channel", "dm", "both")
DEFAULT_KEY = "*"  # the policy entry for workflows not named
META_KEY = "delivery"  # the interrupt meta key choosing a mode per request
_USER_ID_PREFIXES = ("U", "W")


def parse_policy(text: str) -> dict[str, str]:
    """``"channel,refund=dm"`` -> ``{"*": "channel", "refund": "dm"}`` (ValueError if bad)."""
    policy = {DEFAULT_KEY: "auto"}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        name, _, mode = entry.rpartition("=")
        mode = mode.strip().lower()
        if mode not in MODES:
            raise ValueError(f"unknown delivery mode {mode!r}: use one of {', '.join(MODES)}")
        policy[name.strip() or DEFAULT_KEY] = mode
    return policy


def delivery_mode(interrupt: Interrupt, policy: Mapping[str, str]) -> str:
    """The mode for ``interrupt``: its own ``meta["delivery"]``, else its workflow's, else
    the default."""
    chosen = interrupt.meta.get(META_KEY)
    if isinstance(chosen, str) and chosen in MODES:
        return chosen
    return policy.get(interrupt.workflow) or policy.get(DEFAULT_KEY) or "auto"


def targets(interrupt: Interrupt, mode: str, default_channel: str | None) -> list[str]:
    """Where to post ``interrupt`` under ``mode`` (channel ids and user ids to DM)."""
    users = list(dict.fromkeys(r for r in interrupt.responders if r.startswith(_USER_ID_PREFIXES)))
    channel = interrupt.channel or default_channel
    if mode == "channel":
        return [channel] if channel else []
    if mode == "dm" and users:
        return users
    if mode == "both":
        return ([channel] if channel else []) + users
    # auto (and dm without user approvers)
    if interrupt.channel:
        return [interrupt.channel]
    groups = [r for r in interrupt.responders if group_id(r)]
    found = list(users)
    if default_channel and (groups or not users):
        found.append(default_channel)
    return found
