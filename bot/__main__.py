"""``python -m bot``: run the Signoff service (see ``bot.server.serve``)."""

from __future__ import annotations

import asyncio
import logging
import sys

from pydantic import ValidationError

from bot.server import serve
from bot.settings import Settings


def main() -> int:
    """Read the settings from the environment and serve until SIGTERM/SIGINT."""
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"signoff: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
