"""Stable console URLs, for Slack messages, the API and logs to link to.

``console_url(settings, "/runs/abc")`` is ``https://signoff.example.com/runs/abc`` when
``SIGNOFF_PUBLIC_URL`` is set, and None otherwise (a relative link means nothing in Slack).
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from bot.settings import Settings

__all__ = ["console_url", "run_path"]


def run_path(run_id: str) -> str:
    """The console path of a run's page."""
    return f"/runs/{quote(run_id, safe='')}"


def console_url(settings: Settings, path: str = "/", **query: str) -> str | None:
    """The absolute URL of a console page (None without ``SIGNOFF_PUBLIC_URL``).

    Pages: ``/`` (inbox), ``/runs`` (query: status, workflow, requester, since, until),
    ``run_path(run_id)``, ``/workflows``.
    """
    if not settings.public_url:
        return None
    suffix = f"?{urlencode(query)}" if query else ""
    return f"{settings.public_url}{path}{suffix}"
