"""Signoff's Slack adapter: renders approval requests and turns Slack interactions into resumes.

Run the service with ``python -m bot``; embed it with::

    from bot import Settings, create_web_app, open_engine

    engine = open_engine(settings)
    app = create_web_app(engine, settings)  # before the engine starts
"""

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
