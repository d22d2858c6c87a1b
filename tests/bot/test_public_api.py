"""The bot package's public names change only on purpose."""

import bot

EXPECTED = [
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


def test_the_public_names_are_pinned_and_sorted() -> None:
    assert bot.__all__ == EXPECTED
    assert bot.__all__ == sorted(bot.__all__, key=lambda n: (not n.isupper(), n))


def test_every_public_name_exists() -> None:
    for name in bot.__all__:
        assert getattr(bot, name) is not None, name
