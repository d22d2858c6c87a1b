"""Wiring: routes, route installers, Slack's OAuth environment trap, loading workflows."""

from __future__ import annotations

import logging
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot import (
    ROUTE_INSTALLERS,
    Settings,
    check_slack_renderable,
    create_web_app,
    load_workflows,
    open_engine,
)
from bot.server import SLACK_EVENTS_PATH
from bot.slack import action_ids
from engine import DefinitionError, Engine, RunStatus, open_store
from tests.bot import wf_loader_samples
from tests.e2e import wf_approvals
from tests.fakes.slack_api import FakeSlack
from tests.support.slack_bot import SECRET, Bot


async def post_status(app: web.Application, path: str) -> int:
    """The status of an unsigned POST to ``path`` on ``app``."""
    server = TestServer(app, host="127.0.0.1", port=None)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http, http.post(server.make_url(path)) as r:
            return r.status
    finally:
        await server.close()


async def test_slack_events_are_mounted_only_when_slack_is_configured_for_http(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    engine = Engine(open_store(str(tmp_path / "x.db")))
    plain = create_web_app(engine, Settings(_env_file=None))  # type: ignore[call-arg]
    socket = create_web_app(
        Engine(open_store(str(tmp_path / "y.db"))),
        Settings(
            _env_file=None,
            SLACK_BOT_TOKEN=fake_slack.token,  # type: ignore[call-arg]
            SLACK_APP_TOKEN="xapp-1",
            SLACK_API_URL=fake_slack.api_url,
        ),  # fmt: skip
    )
    http = create_web_app(
        Engine(open_store(str(tmp_path / "z.db"))),
        Settings(
            _env_file=None,
            SLACK_BOT_TOKEN=fake_slack.token,  # type: ignore[call-arg]
            SLACK_SIGNING_SECRET=SECRET,
            SLACK_API_URL=fake_slack.api_url,
        ),  # fmt: skip
    )

    assert await post_status(plain, SLACK_EVENTS_PATH) in (404, 405)
    assert await post_status(socket, SLACK_EVENTS_PATH) in (404, 405)
    assert await post_status(http, SLACK_EVENTS_PATH) == 401  # mounted: bolt wants a signature


async def test_a_route_installer_added_to_the_list_is_mounted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Engine] = []

    def install_ping(app: web.Application, engine: Engine, settings: Settings) -> None:
        async def ping(request: web.Request) -> web.Response:
            return web.Response(text="pong")

        seen.append(engine)
        app.router.add_post("/ping", ping)

    monkeypatch.setattr("bot.server.ROUTE_INSTALLERS", [*ROUTE_INSTALLERS, install_ping])
    engine = Engine(open_store(str(tmp_path / "x.db")))

    app = create_web_app(engine, Settings(_env_file=None))  # type: ignore[call-arg]

    assert seen == [engine]
    assert await post_status(app, "/ping") == 200


async def test_oauth_variables_in_the_environment_do_not_switch_bolt_to_oauth(
    make_bot: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_CLIENT_ID", "111.222")
    monkeypatch.setenv("SLACK_CLIENT_SECRET", "client-secret")
    bot: Bot = await make_bot()  # type: ignore[operator]

    assert bot.slack.app.oauth_flow is None
    run_id = await bot.start("change", {"service": "billing"})
    await bot.click(await bot.message(run_id), action_ids.APPROVE, user="U0ALICE")
    assert (await bot.finished(run_id)).status is RunStatus.COMPLETED
    assert bot.fake.calls("auth.test")[0].token == bot.fake.token  # the bot token was used


async def test_handling_slack_requests_leaves_our_log_levels_alone(bot: Bot) -> None:
    ours = logging.getLogger("signoff")
    before = ours.level
    ours.setLevel(logging.DEBUG)
    try:
        assert (await bot.command("help")).status == 200
        assert ours.level == logging.DEBUG
    finally:
        ours.setLevel(before)


def test_a_bot_token_without_a_signing_secret_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="SLACK_SIGNING_SECRET"):
        Settings(_env_file=None, SLACK_BOT_TOKEN="xoxb-1")  # type: ignore[call-arg]


def test_workflows_load_from_modules_attributes_and_workflows_lists() -> None:
    only = {"builtins": False}
    assert load_workflows(["tests.e2e.wf_approvals"], **only) == wf_approvals.WORKFLOWS
    assert load_workflows(["tests.e2e.wf_approvals:change"], **only) == [wf_approvals.change]
    scanned = load_workflows(["tests.bot.wf_loader_samples"] * 2, builtins=False)
    assert scanned == [wf_loader_samples.simple, wf_loader_samples.nested]


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ("tests.no_such_module", ImportError),
        ("tests.e2e.wf_approvals:nope", ValueError),
        ("json", ValueError),
        ("tests.e2e.wf_approvals:WIDE_FIELDS", ValueError),
    ],
)
def test_bad_workflow_entries_are_explained(entry: str, error: type[Exception]) -> None:
    with pytest.raises(error, match=f"SIGNOFF_WORKFLOWS entry '{entry}'"):
        load_workflows([entry])


def test_a_resume_model_slack_cannot_ask_is_refused_at_start(tmp_path: Path) -> None:
    check_slack_renderable(wf_loader_samples.simple)
    with pytest.raises(DefinitionError, match="step 'ask_nested'"):
        check_slack_renderable(wf_loader_samples.nested)

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET=SECRET,
        SIGNOFF_WORKFLOWS="tests.bot.wf_loader_samples",
        SIGNOFF_DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}",
    )  # fmt: skip
    with pytest.raises(DefinitionError, match="cannot be rendered in Slack"):
        open_engine(settings)
