"""The web console: ``signoff serve`` at ``/`` (inbox, runs, run detail, workflows).

Server-rendered HTML (Jinja2 through aiohttp-jinja2), no build step and no CDN: it works
air-gapped. ``install_console`` is the route installer; ``console_url`` builds links to
its pages for Slack messages and the API (needs ``SIGNOFF_PUBLIC_URL``).
"""

from bot.web.console.app import CONSOLE, LINK_PATH, Console, announce_console, install_console
from bot.web.console.links import console_url, run_path

__all__ = [
    "CONSOLE",
    "LINK_PATH",
    "Console",
    "announce_console",
    "console_url",
    "install_console",
    "run_path",
]
