"""Signoff's Slack adapter: renders approval requests and turns Slack interactions into resumes.

Run the service with ``python -m bot``; embed it with::

    from bot import Settings, create_web_app, open_engine

    engine = open_engine(settings)
    app = create_web_app(engine, settings)  # before the engine starts

Importing ``bot`` is light: each public name is imported on first use (PEP 562), so
``import bot.client`` never loads slack-bolt, aiosqlite or the engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, eagerly, for type checkers
    from bot.errors import (
        BotError,
        InvalidReference,
        InvalidSubmission,
        UnknownAction,
        UnsupportedResumeModel,
    )
    from bot.loader import check_slack_renderable, load_workflows
    from bot.server import (
        ROUTE_INSTALLERS,
        SLACK_BOT,
        RouteInstaller,
        create_web_app,
        open_engine,
        serve,
    )
    from bot.settings import Settings
    from bot.slack.app import SlackBot, attach_slack, make_client
    from bot.slack.authorization import UsergroupAuthorizer
    from bot.slack.blocks.fields import SlackChannel, SlackUser
    from bot.slack.blocks.forms import check_renderable
    from bot.slack.blocks.responders import describe_responders, group_id
    from bot.slack.notifier import Notifier, PostedMessage, posted_messages
    from bot.slack.refs import Ref, RefSigner

_WHERE = {
    "BotError": "bot.errors",
    "InvalidReference": "bot.errors",
    "InvalidSubmission": "bot.errors",
    "UnknownAction": "bot.errors",
    "UnsupportedResumeModel": "bot.errors",
    "check_slack_renderable": "bot.loader",
    "load_workflows": "bot.loader",
    "ROUTE_INSTALLERS": "bot.server",
    "SLACK_BOT": "bot.server",
    "RouteInstaller": "bot.server",
    "create_web_app": "bot.server",
    "open_engine": "bot.server",
    "serve": "bot.server",
    "Settings": "bot.settings",
    "SlackBot": "bot.slack.app",
    "attach_slack": "bot.slack.app",
    "make_client": "bot.slack.app",
    "UsergroupAuthorizer": "bot.slack.authorization",
    "SlackChannel": "bot.slack.blocks.fields",
    "SlackUser": "bot.slack.blocks.fields",
    "check_renderable": "bot.slack.blocks.forms",
    "describe_responders": "bot.slack.blocks.responders",
    "group_id": "bot.slack.blocks.responders",
    "Notifier": "bot.slack.notifier",
    "PostedMessage": "bot.slack.notifier",
    "posted_messages": "bot.slack.notifier",
    "Ref": "bot.slack.refs",
    "RefSigner": "bot.slack.refs",
}

__all__ = [
    "ROUTE_INSTALLERS",
    "SLACK_BOT",
    "BotError",
    "InvalidReference",
    "InvalidSubmission",
    "Notifier",
    "PostedMessage",
    "Ref",
    "RefSigner",
    "RouteInstaller",
    "Settings",
    "SlackBot",
    "SlackChannel",
    "SlackUser",
    "UnknownAction",
    "UnsupportedResumeModel",
    "UsergroupAuthorizer",
    "attach_slack",
    "check_renderable",
    "check_slack_renderable",
    "create_web_app",
    "describe_responders",
    "group_id",
    "load_workflows",
    "make_client",
    "open_engine",
    "posted_messages",
    "serve",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use (PEP 562)."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'bot' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
