"""Configuration of the Signoff service, read from the environment and ``.env``.

``load_settings`` reads it at start-up and says, one line per problem, what is wrong.
"""

from __future__ import annotations

import base64
import json
import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AliasGenerator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from engine import field_errors

__all__ = ["ENV_PREFIX", "ConfigError", "LogFormat", "Settings", "describe_errors", "load_settings"]


ENV_PREFIX = "SIGNOFF_"
"""Signoff's own environment variables are ``SIGNOFF_`` and the field name in capitals."""


class LogFormat(StrEnum):
    """How log lines are written."""

    TEXT = "text"
    JSON = "json"


class Settings(BaseSettings):
    """Every setting of ``signoff serve``; see .env.example for each variable.

    Slack variables keep Slack's own names (``SLACK_BOT_TOKEN``...); Signoff's own
    start with ``SIGNOFF_``. Without Slack credentials the service still runs
    workflows and accepts API resumes.
    """

    # Empty values mean "not set", so a copied .env.example with blanks works as is.
    # Every field is read from SIGNOFF_<FIELD> unless it names its own (Slack's) variable.
    # An alias generator rather than env_prefix: the alias is also the keyword and the
    # name in validation errors, so Settings(SIGNOFF_PORT=...) and "SIGNOFF_PORT: ..."
    # messages keep working, where env_prefix would silently ignore such keywords.
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        env_ignore_empty=True,
        alias_generator=AliasGenerator(validation_alias=lambda name: ENV_PREFIX + name.upper()),
    )

    slack_bot_token: SecretStr | None = Field(default=None, validation_alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(
        default=None, validation_alias="SLACK_SIGNING_SECRET"
    )
    slack_app_token: SecretStr | None = Field(default=None, validation_alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field(default="https://slack.com/api/", validation_alias="SLACK_API_URL")
    slash_command: str = "/signoff"
    admins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    default_channel: str | None = None

    database_url: str = "sqlite:///signoff.db"
    workflows: Annotated[list[str], NoDecode] = Field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = Field(default=3000, ge=0, le=65535)
    webhook_secret: SecretStr | None = None
    # Per-workflow secrets as a JSON object {"deploy": "s3cret", ...}; they win over the
    # shared SIGNOFF_WEBHOOK_SECRET so one leaked sender secret exposes one workflow only.
    webhook_secrets: dict[str, SecretStr] = Field(default_factory=dict)
    api_token: SecretStr | None = None
    # Named API tokens as a JSON object {"ci": "...", "agent": "..."}: the name is recorded
    # as the client of what it creates, and one caller is revoked by removing its entry.
    api_tokens: dict[str, SecretStr] = Field(default_factory=dict)
    # Signs request callbacks (Standard Webhooks) and decision receipts: whsec_<base64>.
    callback_secret: SecretStr | None = None
    # Hosts request callbacks may go to (empty: any http(s) host).
    callback_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    callback_timeout: float = Field(default=10.0, gt=0, le=120)
    log_level: str = "INFO"
    log_format: LogFormat = LogFormat.TEXT
    shutdown_grace: float = Field(default=10.0, ge=0)
    lease_seconds: float = Field(default=15.0, gt=0)
    poll_interval: float = Field(default=1.0, gt=0)
    usergroup_cache_seconds: float = Field(default=60.0, ge=0)
    slack_retries: int = Field(default=2, ge=0, le=10)
    slack_timeout: float = Field(default=10.0, gt=0)
    # Pacing of the notifier's Slack calls (bot/slack/pacing.py): per-minute budgets by
    # method as JSON {"chat.update": 50, ...} override the tiers; time_scale is for tests.
    slack_pacing: bool = True
    slack_pacing_budgets: dict[str, int] = Field(default_factory=dict)
    slack_pacing_post_per_second: float = Field(default=1.0, gt=0)
    slack_pacing_time_scale: float = Field(default=1.0, gt=0, le=1)
    # Processes serving together (signoff serve --workers sets it): budgets are divided.
    workers: int = Field(default=1, ge=1, le=256)
    # Set by the parent of `signoff serve --workers N` in each worker: 0..N-1.
    worker_index: int | None = Field(default=None, ge=0)
    # Slow and excess clients (bot.web.guard; docs/deploy.md has the matching proxy settings).
    header_timeout: float = Field(default=10.0, gt=0)
    body_timeout: float = Field(default=30.0, gt=0)
    keepalive_timeout: float = Field(default=75.0, gt=0)
    # None: derived from the open-file limit (RLIMIT_NOFILE), leaving room for everything else.
    max_connections: int | None = Field(default=None, ge=1)
    # Where Slack requests go: "auto", "channel", "dm" or "both", per workflow as
    # "channel,refund=dm" (see bot/slack/delivery.py); a request's meta["delivery"] wins.
    delivery: str = "auto"

    # The web console (bot/web/console/): where people reach it, and how they sign in.
    public_url: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_authorize_url: str = "https://slack.com/openid/connect/authorize"
    session_secret: SecretStr | None = None
    session_secret_file: str = ".signoff-session-key"
    session_hours: float = Field(default=12.0, gt=0)
    operator_name: str = Field(default="operator", min_length=1, max_length=80)
    operator_link_minutes: float = Field(default=15.0, gt=0)

    @field_validator("workflows", "admins", "callback_hosts", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        # Accept "a,b" as well as JSON lists, since .env files are usually written by hand.
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("delivery")
    @classmethod
    def _delivery(cls, value: str) -> str:
        modes = ("auto", "channel", "dm", "both")  # bot.slack.delivery.MODES
        for entry in (e.strip() for e in value.split(",")):
            if entry and entry.rpartition("=")[2].strip().lower() not in modes:
                raise ValueError(f"each entry must be [workflow=]mode, mode one of {modes}")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return level

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL, like https://signoff.example.com")
        return value.rstrip("/")

    @field_validator("callback_secret")
    @classmethod
    def _whsec(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        raw = value.get_secret_value()
        try:
            key = base64.b64decode(raw.removeprefix("whsec_") + "==", validate=False)
        except ValueError:
            key = b""
        if not raw.startswith("whsec_") or len(key) < 16:
            raise ValueError("must be whsec_ followed by at least 16 bytes in base64")
        return value

    @field_validator("api_tokens")
    @classmethod
    def _token_names(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, token in value.items():
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
                raise ValueError("token names are 1-64 letters, digits, '_', '.' or '-'")
            if len(token.get_secret_value()) < 16:
                raise ValueError(f"the token of {name!r} is shorter than 16 characters")
        return value

    @field_validator("slash_command")
    @classmethod
    def _slash(cls, value: str) -> str:
        if not value.startswith("/") or " " in value:
            raise ValueError("must look like /signoff")
        return value

    @model_validator(mode="after")
    def _slack_pair(self) -> Settings:
        # A bot token without a signing secret makes bolt answer 500 to every request:
        # refuse it at start-up instead (unless Socket Mode, which does not sign).
        if self.slack_bot_token and not self.slack_signing_secret and not self.slack_app_token:
            raise ValueError(
                "SLACK_BOT_TOKEN is set but SLACK_SIGNING_SECRET is not: set the signing "
                "secret (HTTP mode) or SLACK_APP_TOKEN (Socket Mode)"
            )
        if (self.slack_signing_secret or self.slack_app_token) and not self.slack_bot_token:
            raise ValueError("Slack is half configured: SLACK_BOT_TOKEN is missing")
        if bool(self.oidc_client_id) != bool(self.oidc_client_secret):
            raise ValueError(
                "Sign in with Slack is half configured: set both SIGNOFF_OIDC_CLIENT_ID and "
                "SIGNOFF_OIDC_CLIENT_SECRET"
            )
        if self.oidc_client_id and not self.slack_bot_token:
            raise ValueError(
                "SIGNOFF_OIDC_CLIENT_ID needs SLACK_BOT_TOKEN: sign-ins are checked against "
                "the bot's workspace"
            )
        return self

    def api_token_names(self) -> list[tuple[str, SecretStr]]:
        """Every accepted API token with its name (the single SIGNOFF_API_TOKEN is "default")."""
        tokens = list(self.api_tokens.items())
        if self.api_token is not None:
            tokens.append(("default", self.api_token))
        return tokens

    def webhook_secret_for(self, workflow: str) -> SecretStr | None:
        """The secret webhooks for ``workflow`` are signed with (None: not accepted)."""
        return self.webhook_secrets.get(workflow, self.webhook_secret)

    @property
    def slack_enabled(self) -> bool:
        """True when Slack credentials are configured."""
        return self.slack_bot_token is not None

    @property
    def oidc_enabled(self) -> bool:
        """True when the console offers Sign in with Slack (OpenID Connect)."""
        return self.oidc_client_id is not None and self.oidc_client_secret is not None

    @property
    def socket_mode(self) -> bool:
        """True when SLACK_APP_TOKEN selects Socket Mode."""
        return self.slack_app_token is not None


class ConfigError(Exception):
    """The configuration is unusable; ``problems`` holds one readable line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration: " + "; ".join(problems))


def describe_errors(exc: ValidationError) -> list[str]:
    """Pydantic errors as ``"SIGNOFF_PORT: Input should be a valid integer"`` lines.

    The offending values are never echoed: some of them are secrets.
    """
    lines = []
    for where, message in field_errors(exc).items():
        message = message.removeprefix("Value error, ")
        lines.append(f"{where}: {message}" if where else message)
    return lines


def load_settings(**overrides: Any) -> Settings:
    """Read ``Settings`` from the environment and ``.env`` (ConfigError if invalid)."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc)) from None
    except SettingsError as exc:
        # Raised for values that are not even parseable (e.g. malformed JSON in
        # SIGNOFF_WEBHOOK_SECRETS); its message names the field, never the value.
        raise ConfigError([_unparseable(exc)]) from None


def _unparseable(exc: SettingsError) -> str:
    # pydantic-settings says 'error parsing value for field "webhook_secrets" ...': name
    # the environment variable instead, which is what the operator has to fix.
    found = re.search(r'field "(\w+)"', str(exc))
    field = Settings.model_fields.get(found.group(1)) if found else None
    name = field.validation_alias if field is not None else None
    cause = exc.__cause__
    detail = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
    return f"{name}: cannot parse the value ({detail})" if isinstance(name, str) else detail
