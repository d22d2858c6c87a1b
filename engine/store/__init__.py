"""Storage backends and ``open_store(url)``, which picks one from the URL scheme."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlencode, urlparse, urlunparse

from engine.store.base import LostOwnership, Store
from engine.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from engine.store.postgres import PostgresStore

__all__ = ["LostOwnership", "SQLiteStore", "Store", "open_store"]

_PG_SCHEMES = ("postgresql", "postgres")
_PG_POOL_OPTIONS = ("pool_min", "pool_max")
_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")


def open_store(url: str) -> Store:
    """Build (not yet open) the store for a database URL.

    * ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or a plain file
      path. Query options: ``synchronous=normal|full`` (durability level, see
      docs/guarantees.md); ``inline_writes=0|1``: whether a batch of a few writes runs
      on the event loop's thread (saves two thread hops; a burst still goes to the
      connection's thread; on by default, and only ever with ``synchronous=normal``).
    * ``postgresql://user:password@host:port/database`` (or ``postgres://``), which
      needs ``pip install signoff[postgres]``. Query options: ``pool_min``/``pool_max``
      (connections per process, default 1/10); any other option is a server setting,
      e.g. ``?search_path=signoff``.
    """
    if "://" not in url:
        return SQLiteStore(url)
    parsed = urlparse(url)
    if parsed.scheme in _PG_SCHEMES:
        return _postgres(url)
    if parsed.scheme != "sqlite":
        raise ValueError(
            f"unsupported database URL scheme {parsed.scheme!r}: use sqlite:///path/to/file.db "
            "or postgresql://user@host/database"
        )
    path = parsed.path[1:] if parsed.path.startswith("/") else parsed.path
    if not path:
        raise ValueError("the sqlite URL names no file: use sqlite:///signoff.db")
    options = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
    inline = options.get("inline_writes", "1").lower()
    if inline not in _ON + _OFF:
        raise ValueError(f"inline_writes must be 1 or 0, not {inline!r}")
    return SQLiteStore(
        path, synchronous=options.get("synchronous", "normal"), inline_writes=inline in _ON
    )


def _postgres(url: str) -> PostgresStore:
    # Imported here so that SQLite users never need asyncpg installed.
    try:
        from engine.store.postgres import PostgresStore
    except ImportError as exc:
        if exc.name != "asyncpg" and "asyncpg" not in str(exc):
            raise
        raise ImportError(
            "a postgresql:// database needs asyncpg: pip install signoff[postgres]"
        ) from exc
    parsed = urlparse(url)
    query = parse_qs(parsed.query, keep_blank_values=True)
    sizes = {k: int(query.pop(k)[-1]) for k in _PG_POOL_OPTIONS if k in query}
    dsn = urlunparse(parsed._replace(query=urlencode(query, doseq=True)))
    return PostgresStore(
        dsn,
        min_size=min(sizes.get("pool_min", 1), sizes.get("pool_max", 10)),
        max_size=sizes.get("pool_max", 10),
    )
