"""The environment of a bare ``signoff serve`` for the hostile-input and slow-client tests.

``clean_env(**values)`` drops proxies and every SIGNOFF_/SLACK_ variable; the process itself
is ``tests.support.service.ServiceProcess`` (``ServeProcess`` here, the same class).
"""

from __future__ import annotations

import os

from tests.support.service import ROOT, ServiceProcess

__all__ = ["ROOT", "ServeProcess", "clean_env"]


def clean_env(**values: str) -> dict[str, str]:
    """The environment without proxies and without SIGNOFF_/SLACK_ variables, plus ``values``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if "proxy" not in k.lower() and not k.startswith(("SIGNOFF_", "SLACK_"))
    }
    env.update(PYTHONUNBUFFERED="1", SIGNOFF_HOST="127.0.0.1", SIGNOFF_PORT="0", **values)
    return env


# One class runs the service for every e2e test: ``tests.support.service.ServiceProcess``
# (``start(env, open_files=...)``, ``stop()``, ``kill()``, ``text()``).
ServeProcess = ServiceProcess
