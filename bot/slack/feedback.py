"""Show the person who clicked the outcome at once, through the click's ``response_url``.

The notifier's ``chat.update`` (from the outbox) makes the outcome durable for everyone, but
it is paced to Slack's Tier 3 budget and may wait its turn under load. ``response_url`` is
not rate-limited like ``chat.update`` (5 uses in 30 minutes per click), so right after a
click resolves its request, the clicked message is replaced with the current state there.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.slack.blocks.compose import current_message, request_info
from bot.slack.deps import Deps
from bot.slack.refs import Ref

__all__ = ["FEEDBACK_TIMEOUT", "show_outcome"]

log = logging.getLogger("signoff.bot.feedback")

FEEDBACK_TIMEOUT = 5  # seconds; the chat.update that follows shows it anyway


async def show_outcome(
    deps: Deps, body: Mapping[str, Any], ref: Ref, client: AsyncWebClient
) -> None:
    """After the ack: replace the clicked message with the request's current state."""
    url = body.get("response_url")
    if not url:
        return
    interrupt = await deps.engine.get_interrupt(ref.run_id, ref.interrupt_id)
    info = request_info(deps.engine, interrupt)
    message = current_message(info, deps.signer.sign(ref.run_id, ref.interrupt_id))
    webhook = AsyncWebhookClient(
        str(url), timeout=FEEDBACK_TIMEOUT, session=client.session, proxy=client.proxy
    )
    try:
        response = await webhook.send(
            text=message.text, blocks=message.blocks, replace_original=True
        )
    except Exception as exc:  # the notifier's update follows: only log it
        log.warning("could not show the outcome through response_url: %s", exc)
        return
    if response.status_code != 200:
        log.warning("response_url refused the outcome: %s %s", response.status_code, response.body)
