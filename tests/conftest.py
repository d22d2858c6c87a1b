"""Fixtures for every test directory: the session's throwaway PostgreSQL server.

Defined once here, so the engine suite and the end-to-end tests share one server.
"""

from tests.pg import postgres_server  # noqa: F401  (a session fixture)
