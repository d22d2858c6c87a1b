"""The SQLite store (the default): one file, shared by the processes of one host.

``store`` holds the ``SQLiteStore`` class; ``ops`` its SQL building blocks, ``write``
what a state change inserts, ``claims`` how workers share work, ``migrate`` the schema;
``batching`` (group commit) and ``connection`` (connections, WAL checkpoints) are the
SQLite-only plumbing underneath.
"""

from engine.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
