"""What the Slack listeners, the slash command and the notifier share."""

from __future__ import annotations

from dataclasses import dataclass

from bot.settings import Settings
from bot.slack.authorization import UsergroupAuthorizer
from bot.slack.bindings import Bindings
from bot.slack.feedback import Feedback
from bot.slack.home import HomeTab
from bot.slack.refs import RefSigner
from engine import Engine

__all__ = ["Deps"]


@dataclass(frozen=True, slots=True)
class Deps:
    """The engine, the settings, the reference signer, the user-group authorizer and
    the interrupts' bindings (resume model, posted messages) clicks are checked against,
    the App Home tab (None when the adapter is built without one), and the
    ``response_url`` feedback (None when the notifier is not paced)."""

    engine: Engine
    settings: Settings
    signer: RefSigner
    authorizer: UsergroupAuthorizer
    bindings: Bindings
    home: HomeTab | None = None
    feedback: Feedback | None = None
