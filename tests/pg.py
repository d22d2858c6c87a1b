"""A throwaway PostgreSQL server for the tests, started once per session.

It uses the server binaries of the distribution (Debian puts them under
``/usr/lib/postgresql/<version>/bin``), initialises a cluster in a temporary
directory, listens on 127.0.0.1 on a free port with Unix sockets disabled, and is
stopped and deleted at the end of the session. Where no binaries exist the tests that
need it are skipped, unless ``SIGNOFF_REQUIRE_POSTGRES=1`` (set by CI) makes that a
failure. Each test gets its own schema (``fresh_url``), which is much cheaper than a
database: a new database copies a template of several megabytes.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REQUIRE_ENV = "SIGNOFF_REQUIRE_POSTGRES"
BIN_ENV = "SIGNOFF_POSTGRES_BIN"
DATABASE = "signoff_test"
USER = "signoff"
# Durability is pointless for a throwaway cluster, and fsync dominates its cost.
FAST_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "64MB",
    "log_min_messages": "warning",
}


def find_bin_dir() -> Path | None:
    """The newest directory holding ``initdb`` and ``pg_ctl``, or None.

    ``SIGNOFF_POSTGRES_BIN`` names the directory explicitly (other distributions).
    """
    explicit = os.environ.get(BIN_ENV)
    if explicit:
        folder = Path(explicit)
        return folder if (folder / "initdb").exists() and (folder / "pg_ctl").exists() else None
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """A running throwaway cluster; ``fresh_url()`` hands out an empty schema."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        # Under /tmp when root: the `postgres` user must reach it (a private TMPDIR won't do).
        tmp = "/tmp" if os.geteuid() == 0 and os.path.isdir("/tmp") else None
        self.root = Path(tempfile.mkdtemp(prefix="signoff-pg-", dir=tmp))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self._counter = itertools.count(1)
        # PostgreSQL refuses to run as root: run it as the `postgres` system user then.
        self._as: list[str] = []
        if os.geteuid() == 0:
            self._as = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres")

    def _run(self, *args: str, timeout: float = 60) -> None:
        proc = subprocess.run(
            [*self._as, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if proc.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}{log}"
            )

    def start(self) -> None:
        """initdb, then start the server and create the test database."""
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            USER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        for attempt in range(3):  # the free port may be taken between probing and binding
            self.port = _free_port()
            # pg_ctl hands these to a shell: '' keeps the empty socket directory list.
            settings = {**FAST_SETTINGS, "port": str(self.port)}
            options = " ".join(f"-c {k}={v or repr('')}" for k, v in settings.items())
            try:
                self._run(
                    str(self.bin_dir / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "30",
                    "start",
                )
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        self.psql(f"CREATE DATABASE {DATABASE}", database="postgres")

    def stop(self) -> None:
        """Stop the server (fast: nothing needs to survive) and delete its files."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(
                    str(self.bin_dir / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                )
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def psql(self, sql: str, *, database: str = DATABASE) -> None:
        """Run one SQL command as the superuser."""
        subprocess.run(
            [
                str(self.bin_dir / "psql"),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                USER,
                "-d",
                database,
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def url(self, database: str = DATABASE) -> str:
        """The URL of a database on this server."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def fresh_url(self) -> str:
        """The URL of a new, empty schema (asyncpg passes ``search_path`` to the server)."""
        schema = f"t{os.getpid()}_{next(self._counter)}_{int(time.time() * 1000) % 100000}"
        self.psql(f"CREATE SCHEMA {schema}")
        return f"{self.url()}?search_path={schema}"


def unavailable(reason: str) -> None:
    """Skip, or fail when CI demands PostgreSQL (``SIGNOFF_REQUIRE_POSTGRES=1``)."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason}, but {REQUIRE_ENV}=1 requires it", pytrace=False)
    pytest.skip(f"{reason} (install the `postgresql` package to run the PostgreSQL tests)")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (skips, or fails on CI, if none can run)."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        unavailable("no PostgreSQL server binaries found (/usr/lib/postgresql/*/bin/initdb)")
        return
    server = PostgresServer(bin_dir)
    try:
        server.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        server.stop()
        unavailable(f"could not start PostgreSQL: {exc}")
        return
    try:
        yield server
    finally:
        server.stop()
