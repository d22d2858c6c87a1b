"""Configuration loading and readable errors; logs that never contain secrets."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.logs import configure_logging, secrets_of
from bot.settings import ConfigError, LogFormat, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No SIGNOFF_/SLACK_ variables and no .env file from the machine."""
    for name in list(os.environ):
        if name.startswith(("SIGNOFF_", "SLACK_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    level = root.level
    yield
    for handler in [h for h in root.handlers if h.get_name() == "signoff"]:
        root.removeHandler(handler)
    root.setLevel(level)


def test_defaults_load_without_slack() -> None:
    settings = load_settings()
    assert not settings.slack_enabled
    assert settings.webhook_secret_for("deploy") is None


def test_every_problem_is_named_by_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNOFF_PORT", "99999")
    monkeypatch.setenv("SIGNOFF_SHUTDOWN_GRACE", "-1")
    monkeypatch.setenv("SIGNOFF_LOG_FORMAT", "xml")
    with pytest.raises(ConfigError) as err:
        load_settings()
    problems = sorted(p.split(":")[0] for p in err.value.problems)
    assert problems == ["SIGNOFF_LOG_FORMAT", "SIGNOFF_PORT", "SIGNOFF_SHUTDOWN_GRACE"]


def test_half_configured_slack_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "abcdef123456")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert err.value.problems == ["Slack is half configured: SLACK_BOT_TOKEN is missing"]
    assert "abcdef" not in str(err.value)


def test_per_workflow_webhook_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNOFF_WEBHOOK_SECRET", "shared-secret")
    monkeypatch.setenv("SIGNOFF_WEBHOOK_SECRETS", '{"deploy": "deploy-secret"}')
    settings = load_settings()
    deploy, other = settings.webhook_secret_for("deploy"), settings.webhook_secret_for("other")
    assert deploy is not None and deploy.get_secret_value() == "deploy-secret"
    assert other is not None and other.get_secret_value() == "shared-secret"
    monkeypatch.setenv("SIGNOFF_WEBHOOK_SECRETS", "{not json")
    with pytest.raises(ConfigError) as err:
        load_settings()
    (problem,) = err.value.problems
    assert problem.startswith("SIGNOFF_WEBHOOK_SECRETS: cannot parse the value")


def test_logs_redact_secrets_and_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNOFF_API_TOKEN", "api-token-value-1")
    monkeypatch.setenv("SIGNOFF_WEBHOOK_SECRETS", '{"deploy": "per-workflow-secret"}')
    settings = load_settings()
    stream = io.StringIO()
    configure_logging("INFO", LogFormat.JSON, secrets=secrets_of(settings), stream=stream)
    log = logging.getLogger("signoff.test")
    log.info("token %s", "api-token-value-1", extra={"run_id": "r1"})
    log.info("secret per-workflow-secret and xoxb-1234-abcd and Bearer abc.def")
    try:
        raise RuntimeError("failed with api-token-value-1")
    except RuntimeError:
        log.exception("boom")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    lines = [line for line in lines if line["logger"] == "signoff.test"]
    text = stream.getvalue()
    for secret in ("api-token-value-1", "per-workflow-secret", "xoxb-1234", "abc.def"):
        assert secret not in text
    assert lines[0]["run_id"] == "r1" and lines[0]["level"] == "INFO"
    assert lines[0]["message"] == "token [redacted]"
    assert "exception" in lines[2] and "[redacted]" in lines[2]["exception"]


def test_text_logs_are_redacted_too() -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", "text", secrets=["s3cret-value"], stream=stream)
    logging.getLogger("signoff.test").warning("using s3cret-value")
    line = stream.getvalue()
    assert "s3cret-value" not in line and "WARNING signoff.test using [redacted]" in line


def test_the_slack_client_builds_debug_lines_only_when_debugging() -> None:
    """slack-sdk tests its client logger's own level before formatting each request and
    response for a debug line; the configured level is set there, so at INFO it skips
    that work, and at DEBUG the lines are still logged."""
    from slack_sdk.web.async_client import AsyncWebClient

    stream = io.StringIO()
    logger = AsyncWebClient().logger
    configure_logging("INFO", "text", stream=stream)
    assert logger.level == logging.INFO and not logger.isEnabledFor(logging.DEBUG)
    configure_logging("DEBUG", "text", stream=stream)
    assert logger.level <= logging.DEBUG and logger.isEnabledFor(logging.DEBUG)
    logger.debug("Sending a request - url: POST https://slack.com/api/chat.postMessage")
    assert "DEBUG slack_sdk.web.async_base_client Sending a request" in stream.getvalue()
    configure_logging("INFO", "text", stream=io.StringIO())


def test_a_copied_env_example_loads_as_is(tmp_path: Path) -> None:
    """Blank values in .env.example mean "not set", not "set to an empty string"."""
    example = Path(__file__).resolve().parents[2] / ".env.example"
    (tmp_path / ".env").write_text(example.read_text())
    settings = load_settings()
    assert not settings.slack_enabled
    assert settings.webhook_secret_for("deploy_approval") is None
    assert settings.api_token is None
    assert settings.workflows == [
        "examples.deploy_approval",
        "examples.expense_approval",
        "examples.access_request",
    ]
