"""Fixtures for the end-to-end tests: the same fake Slack and running service as tests/bot."""

from tests.bot.conftest import _no_proxy, fake_slack  # noqa: F401
from tests.bot.harness import bot, make_bot  # noqa: F401
