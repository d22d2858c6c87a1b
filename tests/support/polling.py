"""Wait for something another task or process does: ``await eventually(check)``."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

__all__ = ["eventually"]


async def eventually(
    check: Callable[[], Any], *, timeout: float = 5.0, what: str = "condition"
) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy; return it.

    Raises:
        AssertionError: ``check`` stayed falsy for ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)
