"""A real PostgreSQL for the Supabase store's tests, started by the test session.

Debian's server runs as an unprivileged user (``postgres`` when the tests run as root, else
the current user) from a temporary data directory, on a free port of 127.0.0.1, with
durability turned off for speed. Each database gets the project's migration applied.
"""

from __future__ import annotations

import getpass
import glob
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from .processes import ROOT, free_port, require_program, wait_until

MIGRATIONS = sorted((ROOT / "supabase" / "migrations").glob("*.sql"))
DEBIAN_BINARIES = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory; ``stop()`` removes everything."""

    def __init__(self) -> None:
        self.initdb = require_program("initdb", DEBIAN_BINARIES)
        self.postgres = require_program("postgres", [Path(self.initdb).parent])
        self.port = free_port()
        self.user = "postgres" if os.geteuid() == 0 else getpass.getuser()
        self._tmp = tempfile.mkdtemp(prefix="ops-pg-")
        self.data = Path(self._tmp) / "data"
        self.log_path = Path(self._tmp) / "postgres.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> PostgresServer:
        as_user = {}
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            shutil.chown(self._tmp, self.user, self.user)
            as_user = {"user": self.user, "group": self.user, "extra_groups": []}
        subprocess.run([self.initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust",
                        "-E", "UTF8", "--no-sync", "--no-instructions"],
                       check=True, capture_output=True, cwd=self._tmp, **as_user)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [self.postgres, "-D", str(self.data), "-p", str(self.port),
                 "-k", self._tmp, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                 "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                 "-c", "max_connections=200", "-c", "TimeZone=UTC"],
                stdout=log, stderr=subprocess.STDOUT, cwd=self._tmp,
                start_new_session=True, **as_user)
        wait_until(self._ready, timeout=30, message=f"PostgreSQL on port {self.port}")
        return self

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"postgres exited with {self.process.returncode}:\n"
                                 f"{self.log_path.read_text(errors='replace')}")
        try:
            with self.connect():
                return True
        except Exception:
            return False

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"

    def connect(self, dbname: str = "postgres"):
        import psycopg
        return psycopg.connect(self.dsn(dbname), autocommit=True, connect_timeout=5)

    def create_database(self, name: str, migrate: bool = True) -> str:
        """A new database, with the migration applied unless ``migrate`` is false."""
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        if migrate:
            self.migrate(name)
        return name

    def migrate(self, dbname: str) -> None:
        with self.connect(dbname) as conn:
            for path in MIGRATIONS:
                conn.execute(path.read_text())

    def stop(self) -> None:
        try:
            if self.process is not None and self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGINT)  # fast shutdown
                try:
                    self.process.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait()
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)
