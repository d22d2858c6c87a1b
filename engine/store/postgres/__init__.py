"""The PostgreSQL store (``pip install signoff[postgres]``): many processes, many hosts.

``store`` holds the ``PostgresStore`` class; ``ops`` its SQL building blocks, ``write``
the one-statement writes, ``claims`` how workers share work, ``migrate`` the schema.
"""

from engine.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
