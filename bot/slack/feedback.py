"""Show the person who clicked the outcome at once, through the click's ``response_url``.

The notifier's ``chat.update`` (from the outbox) makes the outcome durable for everyone, but
it is paced to Slack's Tier 3 budget and may wait its turn under load. ``response_url`` is
not rate-limited like ``chat.update`` (5 uses in 30 minutes per click), so right after a
click resolves its request, the clicked message is replaced with the current state there.

Only when the notifier is paced: without pacing the ``chat.update`` goes out as soon as the
outbox delivers it, so posting the same message to ``response_url`` too would only double
the work of every click (a read, a render and a request) and delay the updates of a burst.

The posts go over connections of their own (``Feedback.session``), never the Web API
client's: a ``response_url`` host that is slow to resolve or answer (each post waits up to
``FEEDBACK_TIMEOUT``) would otherwise hold the shared pool's connections, and the
notifier's ``chat.update`` and ``chat.postMessage`` calls would queue behind them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import aiohttp
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.slack.blocks.compose import current_message, request_info
from bot.slack.refs import Ref, RefSigner
from engine import Engine

__all__ = ["FEEDBACK_CONNECTIONS", "FEEDBACK_TIMEOUT", "Feedback"]

log = logging.getLogger("signoff.bot.feedback")

FEEDBACK_TIMEOUT = 5  # seconds; the chat.update that follows shows it anyway
FEEDBACK_CONNECTIONS = 100  # open at once, on the feedback's own pool


class Feedback:
    """Posts a decided request's current state to the clicks' ``response_url``.

    Args:
        engine: Reads the interrupt as it is now.
        signer: Signs the references of the message's controls.
        proxy: The proxy the Web API client uses, if any.
    """

    def __init__(self, engine: Engine, signer: RefSigner, *, proxy: str | None = None) -> None:
        self.engine = engine
        self.signer = signer
        self.proxy = proxy
        self.session: aiohttp.ClientSession | None = None  # opened at the first post
        self.closed = False

    async def show_outcome(self, body: Mapping[str, Any], ref: Ref) -> None:
        """After the ack: replace the clicked message with the request's current state."""
        url = body.get("response_url")
        if not url or self.closed:
            return
        interrupt = await self.engine.get_interrupt(ref.run_id, ref.interrupt_id)
        info = request_info(self.engine, interrupt)
        message = current_message(info, self.signer.sign(ref.run_id, ref.interrupt_id))
        if self.session is None:
            connector = aiohttp.TCPConnector(limit=FEEDBACK_CONNECTIONS)
            self.session = aiohttp.ClientSession(connector=connector)
        webhook = AsyncWebhookClient(
            str(url), timeout=FEEDBACK_TIMEOUT, session=self.session, proxy=self.proxy
        )
        try:
            response = await webhook.send(
                text=message.text, blocks=message.blocks, replace_original=True
            )
        except Exception as exc:  # the notifier's update follows: only log it
            log.warning("could not show the outcome through response_url: %s", exc)
            return
        if response.status_code != 200:
            log.warning(
                "response_url refused the outcome: %s %s", response.status_code, response.body
            )

    async def close(self) -> None:
        """Close the connections; later outcomes are left to the notifier's update."""
        self.closed = True
        if self.session is not None:
            await self.session.close()
