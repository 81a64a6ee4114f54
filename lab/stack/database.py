"""A private PostgreSQL server for the lab's Keystone and Cinder databases.

sqlite, which the lab used before, answers "database is locked" at once to a transaction that
read before another process wrote (WAL or not), and cinder's services write together: a
backend dropped at start, a volume left in ``creating``.  Production runs a database server;
so does the lab, on a Unix socket only (no TCP port to collide on, and reachable from every
network namespace through the file system), as the service user, with trust authentication
(no password anywhere) behind a socket directory only that user and root can enter.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import List

LOG = logging.getLogger(__name__)

POSTGRES_ROOT = Path("/usr/lib/postgresql")
# A test server: durability is not wanted, speed is.  lock_timeout turns a lock that a
# greenthread holds across a blocking query of its own process (psycopg2 does not yield to
# eventlet) into an error instead of a hung service; log_lock_waits writes each wait longer
# than a second to postgres.log, where a scenario's post-mortem finds a stalled heartbeat.
SERVER_SETTINGS = (
    "listen_addresses=",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=200",
    "lock_timeout=30s",
    "log_lock_waits=on",
)


def postgres_bin(name: str) -> Path:
    """A program of the newest PostgreSQL installed (Debian's postgresql-NN packages)."""
    versions = sorted(POSTGRES_ROOT.glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    if not versions:
        raise RuntimeError(f"no PostgreSQL server under {POSTGRES_ROOT} (Debian package postgresql)")
    return versions[-1].parent / name


class Postgres:
    """The command lines of one server under *directory* (``data/``, and ``run/`` for the
    socket) whose superuser is *user*; the stack runs them, as *user*, in its namespace."""

    def __init__(self, directory: Path, user: str) -> None:
        self.directory = directory
        self.user = user

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def socket_dir(self) -> Path:
        return self.directory / "run"

    @property
    def log_file(self) -> Path:
        return self.directory / "postgres.log"

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of *database* (no password: trust on the private socket)."""
        return f"postgresql+psycopg2://{self.user}@/{database}?host={self.socket_dir}"

    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def initdb_argv(self) -> List[str]:
        return [
            str(postgres_bin("initdb")),
            *("--pgdata", str(self.data_dir), "--username", self.user, "--auth", "trust"),
            *("--encoding", "UTF8", "--locale", "C.UTF-8", "--no-sync"),
        ]

    def server_argv(self) -> List[str]:
        argv = [str(postgres_bin("postgres")), "-D", str(self.data_dir), "-k", str(self.socket_dir)]
        for setting in SERVER_SETTINGS:
            argv += ["-c", setting]
        return argv

    def psql_argv(self, sql: str) -> List[str]:
        """psql running *sql* in the maintenance database, unaligned tuples only."""
        return [
            str(postgres_bin("psql")),
            *("-h", str(self.socket_dir), "-U", self.user, "-d", "postgres"),
            *("-v", "ON_ERROR_STOP=1", "-tAc", sql),
        ]

    def ready(self) -> bool:
        """The server accepts connections on its socket."""
        argv = [str(postgres_bin("pg_isready")), "-q", "-h", str(self.socket_dir), "-U", self.user]
        return subprocess.run(argv, stdin=subprocess.DEVNULL, check=False).returncode == 0
