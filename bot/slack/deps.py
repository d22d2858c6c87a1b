"""What the Slack listeners, the slash command and the notifier share."""

from __future__ import annotations

from dataclasses import dataclass

from bot.settings import Settings
from bot.slack.authorization import UsergroupAuthorizer
from bot.slack.bindings import Bindings
from bot.slack.home import HomeTab
from bot.slack.refs import RefSigner
from engine import Engine

__all__ = ["Deps"]


@dataclass(frozen=True, slots=True)
class Deps:
    """The engine, the settings, the reference signer, the user-group authorizer and
    the interrupts' bindings (resume model, posted messages) clicks are checked against,
    and the App Home tab (None when the adapter is built without one)."""

    engine: Engine
    settings: Settings
    signer: RefSigner
    authorizer: UsergroupAuthorizer
    bindings: Bindings
    home: HomeTab | None = None
