"""Fixtures for every test directory, registered once here as plugins.

Each listed module defines its fixtures where its helpers live; listing it here makes
them available everywhere without re-importing fixture functions under ``# noqa: F401``.
"""

pytest_plugins = [
    "tests.pg",  # postgres_server: the session's throwaway PostgreSQL server
    "tests.support.fixtures",  # fake_slack, slack_client, no proxy
    "tests.support.slack_bot",  # bot, make_bot: a running Signoff wired to the fake Slack
    "tests.support.console",  # make_site: Signoff with its web console, browsers for it
    "tests.engine.fixtures_runtime",  # probe
    "tests.e2e.workers",  # workers: real worker processes
    "tests.e2e.requests_server",  # requests_server, receiver: `signoff serve` for requests
]
