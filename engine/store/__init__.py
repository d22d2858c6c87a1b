"""Storage backends and ``open_store(url)``, which picks one from the URL scheme."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from engine.store.base import LostOwnership, Store
from engine.store.sqlite import SQLiteStore

__all__ = ["LostOwnership", "SQLiteStore", "Store", "open_store"]


def open_store(url: str) -> SQLiteStore:
    """Build (not yet open) the store for a database URL.

    ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or a plain file path.
    Query options: ``synchronous=normal|full`` (durability level, see docs/guarantees.md).
    """
    if "://" not in url:
        return SQLiteStore(url)
    parsed = urlparse(url)
    if parsed.scheme != "sqlite":
        raise ValueError(
            f"unsupported database URL scheme {parsed.scheme!r}: use sqlite:///path/to/file.db"
        )
    path = parsed.path[1:] if parsed.path.startswith("/") else parsed.path
    if not path:
        raise ValueError("the sqlite URL names no file: use sqlite:///signoff.db")
    options = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
    return SQLiteStore(path, synchronous=options.get("synchronous", "normal"))
