"""Configuration of the Signoff service, read from the environment and ``.env``."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


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
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

    slack_bot_token: SecretStr | None = Field(default=None, validation_alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(
        default=None, validation_alias="SLACK_SIGNING_SECRET"
    )
    slack_app_token: SecretStr | None = Field(default=None, validation_alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field(default="https://slack.com/api/", validation_alias="SLACK_API_URL")
    slash_command: str = Field(default="/signoff", validation_alias="SIGNOFF_SLASH_COMMAND")
    admins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="SIGNOFF_ADMINS"
    )
    default_channel: str | None = Field(default=None, validation_alias="SIGNOFF_DEFAULT_CHANNEL")

    database_url: str = Field(
        default="sqlite:///signoff.db", validation_alias="SIGNOFF_DATABASE_URL"
    )
    workflows: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="SIGNOFF_WORKFLOWS"
    )
    host: str = Field(default="127.0.0.1", validation_alias="SIGNOFF_HOST")
    port: int = Field(default=3000, ge=0, le=65535, validation_alias="SIGNOFF_PORT")
    webhook_secret: SecretStr | None = Field(
        default=None, validation_alias="SIGNOFF_WEBHOOK_SECRET"
    )
    # Per-workflow secrets as a JSON object {"deploy": "s3cret", ...}; they win over the
    # shared SIGNOFF_WEBHOOK_SECRET so one leaked sender secret exposes one workflow only.
    webhook_secrets: dict[str, SecretStr] = Field(
        default_factory=dict, validation_alias="SIGNOFF_WEBHOOK_SECRETS"
    )
    api_token: SecretStr | None = Field(default=None, validation_alias="SIGNOFF_API_TOKEN")
    log_level: str = Field(default="INFO", validation_alias="SIGNOFF_LOG_LEVEL")
    log_format: LogFormat = Field(default=LogFormat.TEXT, validation_alias="SIGNOFF_LOG_FORMAT")
    shutdown_grace: float = Field(default=10.0, ge=0, validation_alias="SIGNOFF_SHUTDOWN_GRACE")
    lease_seconds: float = Field(default=15.0, gt=0, validation_alias="SIGNOFF_LEASE_SECONDS")
    poll_interval: float = Field(default=1.0, gt=0, validation_alias="SIGNOFF_POLL_INTERVAL")
    usergroup_cache_seconds: float = Field(
        default=60.0, ge=0, validation_alias="SIGNOFF_USERGROUP_CACHE_SECONDS"
    )
    slack_retries: int = Field(default=2, ge=0, le=10, validation_alias="SIGNOFF_SLACK_RETRIES")
    slack_timeout: float = Field(default=10.0, gt=0, validation_alias="SIGNOFF_SLACK_TIMEOUT")

    @field_validator("workflows", "admins", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        # Accept "a,b" as well as JSON lists, since .env files are usually written by hand.
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return level

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
        return self

    def webhook_secret_for(self, workflow: str) -> SecretStr | None:
        """The secret webhooks for ``workflow`` are signed with (None: not accepted)."""
        return self.webhook_secrets.get(workflow, self.webhook_secret)

    @property
    def slack_enabled(self) -> bool:
        """True when Slack credentials are configured."""
        return self.slack_bot_token is not None

    @property
    def socket_mode(self) -> bool:
        """True when SLACK_APP_TOKEN selects Socket Mode."""
        return self.slack_app_token is not None
